"""MinePass publisher kit for Python 3.9+: mints user proofs for your signed-in users and serves gated
content only for a valid, unused unlock token. The standard library plus PyJWT and cryptography
(requirements.txt), nothing from MinePass.
Run: BROKER_URL=… SITE_KEY=… SITE_SECRET=… CONTENT_ID=… PORT=3000 python3 server.py
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"kit: set {name} (see README.md)")
    return value


BROKER_URL = env("BROKER_URL")  # no trailing slash; also the tokens' `iss`
SITE_KEY = env("SITE_KEY")
SITE_SECRET = env("SITE_SECRET")  # server-side only: never send it to a browser
CONTENT_ID = env("CONTENT_ID")
PORT = int(env("PORT", "3000"))
CONTENT_HTML = env("CONTENT_HTML", "<p>Thanks for mining: this is the kit gated content.</p>")

# PyJWKClient caches the key set (here 5 minutes) and refetches it once when a token names an
# unknown `kid` (a rotated key), at most every 30 s, then refuses.
JWKS = jwt.PyJWKClient(f"{BROKER_URL}/.well-known/jwks.json", lifespan=300, timeout=5, cooldown_duration=30)


def user_proof(user):
    """The broker accepts `user` in the SDK's hello only with this proof, so nobody can mine into
    (or read the balance of) another user's account by typing their id."""
    exp = int(time.time()) + 3600
    message = f"minepass-user-proof-v1\n{SITE_KEY}\n{user}\n{exp}"
    mac = hmac.new(SITE_SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{exp}.{mac}"


def valid_user(user):
    """1-128 bytes of UTF-8 without control characters: the ids the broker accepts."""
    return (
        isinstance(user, str)
        and 0 < len(user.encode()) <= 128
        and not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in user)
    )


class BrokerUnavailable(Exception):
    pass


def refuse(token):
    """The error code for a token that must not unlock the content, or None if it may."""
    try:
        key = JWKS.get_signing_key_from_jwt(token)
        # Signature from the JWKS, only EdDSA (never `none` or HS256), then exp, iss and aud.
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["EdDSA"],
            issuer=BROKER_URL,
            audience=SITE_KEY,
            options={"require": ["exp", "iss", "aud", "jti"]},
        )
    except jwt.PyJWKClientConnectionError as error:  # the JWKS fetch failed: not the token's fault
        raise BrokerUnavailable() from error
    except jwt.ExpiredSignatureError:
        return "expired"
    except jwt.InvalidIssuerError:
        return "wrong_issuer"
    except jwt.InvalidAudienceError:
        return "wrong_audience"
    except jwt.PyJWTError:  # malformed, bad signature, unknown kid, wrong alg, missing claim
        return "bad_token"
    if claims.get("content") != CONTENT_ID:
        return "wrong_content"
    # A signature proves the broker issued the token, not that it was not used before: the verify
    # API consumes it, so a copied token unlocks nothing a second time.
    request = urllib.request.Request(
        f"{BROKER_URL}/api/v1/tokens/verify",
        data=json.dumps({"token": token}).encode(),
        headers={"Authorization": f"Bearer {SITE_SECRET}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:  # 401 and the like still carry {"ok": false, ...}
            answer = json.load(error)
    except (OSError, ValueError) as error:
        raise BrokerUnavailable() from error
    return None if answer.get("ok") is True else str(answer.get("error", "verify_failed"))


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, content_type="application/json"):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self.reply(200, "ok", "text/plain")
        if url.path == "/proof":
            # DEMO ONLY: a real site takes the user from its own login session, never from the
            # request, or anyone could get a proof for anyone.
            try:
                user = parse_qs(url.query, errors="strict").get("user", [""])[0]
            except UnicodeDecodeError:
                user = ""
            if not valid_user(user):
                return self.reply(400, {"ok": False, "error": "bad_user"})
            return self.reply(200, {"site": SITE_KEY, "user": user, "user_proof": user_proof(user)})
        self.reply(404, {"ok": False, "error": "not_found"})

    def do_POST(self):
        if urlsplit(self.path).path != "/content":
            return self.reply(404, {"ok": False, "error": "not_found"})
        token = None
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= 16 * 1024:  # no token is larger
                token = json.loads(self.rfile.read(length)).get("token")
        except (ValueError, AttributeError):
            pass
        if not isinstance(token, str):
            return self.reply(400, {"ok": False, "error": "bad_request"})
        try:
            error = refuse(token)
        except BrokerUnavailable:
            return self.reply(502, {"ok": False, "error": "broker_unavailable"})
        if error:
            return self.reply(403, {"ok": False, "error": error})
        self.reply(200, CONTENT_HTML, "text/html; charset=utf-8")


if __name__ == "__main__":
    print(f"kit: listening on http://127.0.0.1:{PORT}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
