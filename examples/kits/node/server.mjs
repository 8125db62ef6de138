// MinePass publisher kit for Node 20+: mints user proofs for your signed-in users and serves gated
// content only for a valid, unused unlock token. Node's standard library plus `jose`, nothing from
// MinePass. Run: BROKER_URL=… SITE_KEY=… SITE_SECRET=… CONTENT_ID=… PORT=3000 node server.mjs
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`kit: set ${name} (see README.md)`);
    process.exit(2);
  }
  return value;
}
const BROKER_URL = env('BROKER_URL'); // no trailing slash; also the tokens' `iss`
const SITE_KEY = env('SITE_KEY');
const SITE_SECRET = env('SITE_SECRET'); // server-side only: never send it to a browser
const CONTENT_ID = env('CONTENT_ID');
const PORT = Number(env('PORT', '3000'));
const CONTENT_HTML = env('CONTENT_HTML', '<p>Thanks for mining: this is the kit gated content.</p>');

// jose caches the key set (here 5 minutes) and refetches it once when a token names an unknown
// `kid` (a rotated key), at most every 30 s, then refuses.
const JWKS = createRemoteJWKSet(new URL(`${BROKER_URL}/.well-known/jwks.json`), {
  cacheMaxAge: 5 * 60_000,
  cooldownDuration: 30_000,
});

// The broker accepts `user` in the SDK's hello only with this proof, so nobody can mine into (or
// read the balance of) another user's account by typing their id.
function userProof(user) {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const message = `minepass-user-proof-v1\n${SITE_KEY}\n${user}\n${exp}`;
  return `${exp}.${createHmac('sha256', SITE_SECRET).update(message, 'utf8').digest('hex')}`;
}

// 1-128 bytes of UTF-8 without control characters: the ids the broker accepts.
const validUser = (user) =>
  typeof user === 'string' && user !== '' && Buffer.byteLength(user) <= 128 &&
  !/[\0-\x1f\x7f-\x9f]/.test(user);

class BrokerUnavailable extends Error {}

// The error code for a token that must not unlock the content, or null if it may.
async function refuse(token) {
  let claims;
  try {
    // Signature from the JWKS, only EdDSA (never `none` or HS256), then iss, aud and exp.
    ({ payload: claims } = await jwtVerify(token, JWKS, {
      algorithms: ['EdDSA'],
      issuer: BROKER_URL,
      audience: SITE_KEY,
      requiredClaims: ['exp', 'jti'],
    }));
  } catch (error) {
    // Trouble fetching the JWKS (network, timeout, an answer that is not 200 JSON) is not the
    // token's fault.
    const fetching = error instanceof errors.JWKSTimeout || error.code === 'ERR_JOSE_GENERIC';
    if (fetching || !(error instanceof errors.JOSEError)) throw new BrokerUnavailable();
    if (error instanceof errors.JWTExpired) return 'expired';
    if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'iss') return 'wrong_issuer';
    if (error instanceof errors.JWTClaimValidationFailed && error.claim === 'aud') return 'wrong_audience';
    return 'bad_token';
  }
  if (claims.content !== CONTENT_ID) return 'wrong_content';
  // A signature proves the broker issued the token, not that it was not used before: the verify
  // API consumes it, so a copied token unlocks nothing a second time.
  let answer;
  try {
    const response = await fetch(`${BROKER_URL}/api/v1/tokens/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SITE_SECRET}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
      signal: AbortSignal.timeout(5000),
    });
    answer = await response.json();
  } catch {
    throw new BrokerUnavailable();
  }
  return answer.ok === true ? null : String(answer.error ?? 'verify_failed');
}

function reply(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

// The request body, or null if it is larger than any token (16 KiB).
async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16 * 1024) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://kit');
  if (req.method === 'GET' && url.pathname === '/healthz') return reply(res, 200, 'ok', 'text/plain');
  if (req.method === 'GET' && url.pathname === '/proof') {
    // DEMO ONLY: a real site takes the user from its own login session, never from the request,
    // or anyone could get a proof for anyone.
    const user = url.searchParams.get('user');
    if (!validUser(user)) return reply(res, 400, { ok: false, error: 'bad_user' });
    return reply(res, 200, { site: SITE_KEY, user, user_proof: userProof(user) });
  }
  if (req.method === 'POST' && url.pathname === '/content') {
    let token;
    try {
      token = JSON.parse(await readBody(req)).token;
    } catch {}
    if (typeof token !== 'string') return reply(res, 400, { ok: false, error: 'bad_request' });
    const error = await refuse(token);
    if (error) return reply(res, 403, { ok: false, error });
    return reply(res, 200, CONTENT_HTML, 'text/html; charset=utf-8');
  }
  reply(res, 404, { ok: false, error: 'not_found' });
}

http
  .createServer((req, res) =>
    handle(req, res).catch((error) => {
      if (!(error instanceof BrokerUnavailable)) console.error('kit:', error);
      reply(res, 502, { ok: false, error: 'broker_unavailable' });
    }),
  )
  .listen(PORT, '127.0.0.1', () => console.log(`kit: listening on http://127.0.0.1:${PORT}`));
