<?php
// MinePass publisher kit for PHP 7.2+ (sodium built in): mints user proofs for your signed-in users
// and serves gated content only for a valid, unused unlock token. No composer, nothing from MinePass.
// Run: BROKER_URL=… SITE_KEY=… SITE_SECRET=… CONTENT_ID=… php -S 127.0.0.1:3000 server.php

function env(string $name, ?string $default = null): string {
    $value = getenv($name);
    if ($value === false) $value = $default;
    if ($value === null) { reply(500, ['ok' => false, 'error' => "set $name (see README.md)"]); exit; }
    return $value;
}

function reply(int $status, $body, string $type = 'application/json'): void {
    http_response_code($status);
    header("Content-Type: $type");
    header('Cache-Control: no-store');
    echo is_string($body) ? $body : json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
}

// The broker accepts `user` in the SDK's hello only with this proof, so nobody can mine into (or read
// the balance of) another user's account by typing their id.
function user_proof(string $site, string $secret, string $user): string {
    $exp = time() + 3600;
    return $exp . '.' . hash_hmac('sha256', "minepass-user-proof-v1\n$site\n$user\n$exp", $secret);
}

// 1-128 bytes of UTF-8 without control characters: the ids the broker accepts.
function valid_user($user): bool {
    return is_string($user) && $user !== '' && strlen($user) <= 128
        && preg_match('/[\x{0}-\x{1f}\x{7f}-\x{9f}]/u', $user) === 0; // false for invalid UTF-8
}

// Strict base64url (no padding) to bytes, or null.
function b64url(string $text): ?string {
    if (!preg_match('/^[A-Za-z0-9_-]*$/', $text)) return null;
    $bytes = base64_decode(strtr($text, '-_', '+/'), true);
    return $bytes === false ? null : $bytes;
}

// GET or POST JSON with a timeout; the decoded answer (4xx answers too), or null if unreachable.
function http_json(string $url, ?array $post = null, array $headers = []): ?array {
    $options = ['method' => 'GET', 'timeout' => 5, 'ignore_errors' => true, 'header' => $headers];
    if ($post !== null) {
        $options['method'] = 'POST';
        $options['header'][] = 'Content-Type: application/json';
        $options['content'] = json_encode($post);
    }
    $body = @file_get_contents($url, false, stream_context_create(['http' => $options]));
    $answer = $body === false ? null : json_decode($body, true);
    return is_array($answer) ? $answer : null;
}

// The broker's Ed25519 keys by kid, from a file cache if younger than $max_age seconds (each PHP
// request starts afresh, so the cache cannot live in memory).
function jwks(string $broker, int $max_age): ?array {
    $cache = sys_get_temp_dir() . '/minepass-jwks-' . md5($broker) . '.json';
    clearstatcache();
    if (is_file($cache) && time() - filemtime($cache) < $max_age) {
        $keys = json_decode((string) file_get_contents($cache), true);
        if (is_array($keys)) return $keys;
    }
    $answer = http_json("$broker/.well-known/jwks.json");
    if (!is_array($answer['keys'] ?? null)) return null;
    $keys = [];
    foreach ($answer['keys'] as $jwk) {
        $ed25519 = [$jwk['kty'] ?? '', $jwk['crv'] ?? '', $jwk['alg'] ?? ''] === ['OKP', 'Ed25519', 'EdDSA'];
        if ($ed25519 && is_string($jwk['kid'] ?? null) && is_string($jwk['x'] ?? null)) {
            $keys[$jwk['kid']] = $jwk['x'];
        }
    }
    $temp = "$cache." . getmypid(); // write then rename, so a reader never sees half a file
    file_put_contents($temp, json_encode($keys));
    rename($temp, $cache);
    return $keys;
}

// The error code for a token that must not unlock the content, or null if it may.
function refuse(string $token, string $broker, string $site, string $secret, string $content): ?string {
    // 1. Signature: three base64url parts, header alg EdDSA only (never `none` or HS256), a kid the
    //    JWKS names. The JWKS is cached 5 minutes; an unknown kid refetches it once (the broker may
    //    have rotated its key) unless it was fetched in the last 30 s.
    $parts = explode('.', $token);
    if (count($parts) !== 3) return 'bad_token';
    [$h, $p, $s] = $parts;
    $header = json_decode(b64url($h) ?? '', true);
    $claims = json_decode(b64url($p) ?? '', true);
    $signature = b64url($s);
    if (!is_array($header) || !is_array($claims) || strlen($signature ?? '') !== SODIUM_CRYPTO_SIGN_BYTES) {
        return 'bad_token';
    }
    if (($header['alg'] ?? null) !== 'EdDSA' || !is_string($header['kid'] ?? null)) return 'bad_token';
    $keys = jwks($broker, 300);
    if ($keys !== null && !isset($keys[$header['kid']])) $keys = jwks($broker, 30);
    if ($keys === null) return 'broker_unavailable';
    $public = isset($keys[$header['kid']]) ? b64url($keys[$header['kid']]) : null;
    if ($public === null || strlen($public) !== SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES) return 'bad_token';
    if (!sodium_crypto_sign_verify_detached($signature, "$h.$p", $public)) return 'bad_token';
    // 2. Claims: issued by our broker, for our site, not expired, for this content item.
    if (($claims['iss'] ?? null) !== $broker) return 'wrong_issuer';
    if (($claims['aud'] ?? null) !== $site) return 'wrong_audience';
    if (!is_int($claims['exp'] ?? null) || $claims['exp'] <= time()) return 'expired';
    if (($claims['content'] ?? null) !== $content) return 'wrong_content';
    // 3. A signature proves the broker issued the token, not that it was not used before: the verify
    //    API consumes it, so a copied token unlocks nothing a second time.
    $auth = ["Authorization: Bearer $secret"];
    $answer = http_json("$broker/api/v1/tokens/verify", ['token' => $token], $auth);
    if ($answer === null) return 'broker_unavailable';
    return ($answer['ok'] ?? false) === true ? null : (string) ($answer['error'] ?? 'verify_failed');
}

$broker = env('BROKER_URL'); // no trailing slash; also the tokens' `iss`
$site = env('SITE_KEY');
$secret = env('SITE_SECRET'); // server-side only: never send it to a browser
$content = env('CONTENT_ID');
$html = env('CONTENT_HTML', '<p>Thanks for mining: this is the kit gated content.</p>');
$method = $_SERVER['REQUEST_METHOD'];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);

if ($method === 'GET' && $path === '/healthz') {
    reply(200, 'ok', 'text/plain');
} elseif ($method === 'GET' && $path === '/proof') {
    // DEMO ONLY: a real site takes the user from its own login session, never from the request, or
    // anyone could get a proof for anyone.
    $user = $_GET['user'] ?? null;
    if (!valid_user($user)) {
        reply(400, ['ok' => false, 'error' => 'bad_user']);
    } else {
        reply(200, ['site' => $site, 'user' => $user, 'user_proof' => user_proof($site, $secret, $user)]);
    }
} elseif ($method === 'POST' && $path === '/content') {
    $body = file_get_contents('php://input', false, null, 0, 16 * 1024 + 1); // no token is larger
    $request = strlen($body) <= 16 * 1024 ? json_decode($body, true) : null;
    if (!is_array($request) || !is_string($request['token'] ?? null)) {
        reply(400, ['ok' => false, 'error' => 'bad_request']);
    } else {
        $error = refuse($request['token'], $broker, $site, $secret, $content);
        if ($error === null) reply(200, $html, 'text/html; charset=utf-8');
        else reply($error === 'broker_unavailable' ? 502 : 403, ['ok' => false, 'error' => $error]);
    }
} else {
    reply(404, ['ok' => false, 'error' => 'not_found']);
}
