//! The publisher kits (`examples/kits/`: Node, Python, PHP) against a real broker: each kit runs as
//! its own process, mints user proofs the broker accepts, and serves its gated content only for a
//! valid, unused unlock token for its site and content item. A missing runtime fails the test with
//! what to install (`cargo xtask test` installs them).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use hmac::{Hmac, Mac};
use minepass::protocol::{self, ServerMessage};
use minepass_broker::tokens::Tokens;
use serde_json::{Value, json};
use sha2::Sha256;

/// Text in every kit's default CONTENT_HTML: present only when a kit unlocks.
const MARKER: &str = "kit gated content";

#[tokio::test]
async fn the_node_kit_mints_proofs_and_unlocks_only_for_a_valid_unused_token() {
    check_kit(Kit::Node).await;
}

#[tokio::test]
async fn the_python_kit_mints_proofs_and_unlocks_only_for_a_valid_unused_token() {
    check_kit(Kit::Python).await;
}

#[tokio::test]
async fn the_php_kit_mints_proofs_and_unlocks_only_for_a_valid_unused_token() {
    check_kit(Kit::Php).await;
}

async fn check_kit(kit: Kit) {
    let broker = TestBroker::start().await;
    broker.ledger.put_content(&broker.site_key, "other", "Other", CONTENT_WORK).await.unwrap();
    let server = KitServer::start(kit, &broker).await;

    // User proofs: byte for byte the broker's format, for any well-formed id.
    for user in ["reader-42", "zoë 🦀", &"é".repeat(64)] {
        let (status, answer) = server.proof(Some(user)).await;
        assert_eq!(status, 200, "{kit:?} /proof?user={user}: {answer}");
        let proof = answer["user_proof"].as_str().unwrap();
        let exp: i64 = proof.split_once('.').unwrap().0.parse().unwrap();
        assert!((unix_now() + 3590..=unix_now() + 3600).contains(&exp), "{kit:?}: exp {exp}");
        let expected = json!({"site": broker.site_key, "user": user,
            "user_proof": user_proof(&broker.site_secret, &broker.site_key, user, exp)});
        assert_eq!(answer, expected, "{kit:?}");
    }
    let over = "é".repeat(65); // 130 bytes: the limit is in bytes, not characters
    for user in [Some(""), Some(over.as_str()), Some("a\nb"), Some("tab\there"), Some("c1\u{85}"), None] {
        let (status, answer) = server.proof(user).await;
        assert_eq!((status, answer), (400, json!({"ok": false, "error": "bad_user"})), "{kit:?}: {user:?}");
    }

    // The kit's proof opens a session for its user, whose mining unlocks the content.
    let (_, answer) = server.proof(Some("reader-42")).await;
    let proof = answer["user_proof"].as_str().unwrap();
    let token = mine_token(&broker, &broker.site_key, "reader-42", proof, "article").await;
    let other_content = mine_token(&broker, &broker.site_key, "reader-42", proof, "other").await;
    let other_site = broker.ledger.add_site("Other site").await.unwrap();
    broker.ledger.put_content(&other_site.key, "article", "Article", 1 << 12).await.unwrap();
    let other_proof = user_proof(&other_site.secret, &other_site.key, "reader-42", unix_now() + 3600);
    let other_audience = mine_token(&broker, &other_site.key, "reader-42", &other_proof, "article").await;

    // Forgeries and tokens that are genuine but not for this kit, all refused before the single use.
    let (header, payload) = header_and_payload(&token);
    let kid = header["kid"].as_str().unwrap();
    let mut altered = payload.clone();
    altered["sub"] = json!("mallory");
    let signature = token.rsplit('.').next().unwrap();
    let jwks: Value = reqwest::get(format!("http://{}/.well-known/jwks.json", broker.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|jwk| jwk["kid"] == kid).unwrap();
    let public_key = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    let issuer = format!("http://{}", broker.address);
    let elsewhere = Tokens::load(&broker.ledger, "http://elsewhere.example".into()).await.unwrap();
    let ours = Tokens::load(&broker.ledger, issuer).await.unwrap();
    let (_, mut stale) = ours.issue("reader-42", &broker.site_key, "article", CONTENT_WORK, 0);
    stale.exp = stale.iat - 60;
    let refused = [
        ("altered payload", encode(&header, &altered, signature), "bad_token"),
        ("alg none", encode(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &payload, ""), "bad_token"),
        ("HS256 keyed with the public key", hs256(kid, &payload, &public_key), "bad_token"),
        (
            "unknown kid",
            encode(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "0000"}), &payload, signature),
            "bad_token",
        ),
        ("garbage", "not.a.token".into(), "bad_token"),
        ("empty", String::new(), "bad_token"),
        ("another issuer", elsewhere.issue("reader-42", &broker.site_key, "article", 1, 0).0, "wrong_issuer"),
        ("another site", other_audience, "wrong_audience"),
        ("expired", ours.sign(&stale), "expired"),
        ("another content item", other_content.clone(), "wrong_content"),
    ];
    for (what, forged, code) in refused {
        server.expect_refused(what, json!({ "token": forged }).to_string(), 403, code).await;
    }
    for body in [r#"{"nope":1}"#, "not json", r#"{"token":5}"#, "[]", "null", ""] {
        server.expect_refused(body, body.into(), 400, "bad_request").await;
    }

    // The genuine token unlocks once; a replay is refused by the broker's single use.
    let (status, html) = server.content(json!({ "token": token }).to_string()).await;
    assert_eq!(status, 200, "{kit:?}: {html}");
    assert!(html.contains(MARKER), "{kit:?}: {html}");
    server.expect_refused("replay", json!({ "token": token }).to_string(), 403, "already_used").await;
    // The kit checked the content item before consuming: that token is still unused at the broker.
    let (_, answer) = broker.verify_token(&broker.site_secret, &other_content).await;
    assert_eq!(answer["ok"], json!(true), "{kit:?}: {answer}");
}

/// One of the kits in examples/kits.
#[derive(Debug, Clone, Copy)]
enum Kit {
    Node,
    Python,
    Php,
}

impl Kit {
    fn dir(self) -> PathBuf {
        let name = match self {
            Kit::Node => "node",
            Kit::Python => "python",
            Kit::Php => "php",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/kits").join(name)
    }

    /// The command that runs the kit on `port`.
    fn command(self, port: u16) -> Command {
        let (program, args) = match self {
            Kit::Node => ("node", vec!["server.mjs".to_owned()]),
            Kit::Python => ("python3", vec!["server.py".to_owned()]),
            Kit::Php => ("php", vec!["-S".to_owned(), format!("127.0.0.1:{port}"), "server.php".to_owned()]),
        };
        let mut command = Command::new(program);
        command.args(args).current_dir(self.dir());
        command
    }

    /// Fails, saying what to install, unless the kit's runtime and its one package are there.
    fn require_runtime(self) {
        let (program, args, install): (_, &[&str], _) = match self {
            Kit::Node => (
                "node",
                &["--input-type=module", "-e", "await import('jose')"],
                "Node.js 20+ and the npm package jose: run `npm ci` in the repository root",
            ),
            Kit::Python => (
                "python3",
                &["-c", "import jwt, cryptography"],
                "python3 with PyJWT and cryptography: run \
                 `python3 -m pip install -r examples/kits/python/requirements.txt`",
            ),
            Kit::Php => (
                "php",
                &["-r", "exit(function_exists('sodium_crypto_sign_verify_detached') ? 0 : 1);"],
                "PHP 7.2+ with sodium: run `apt-get install -y php-cli`",
            ),
        };
        let probe = Command::new(program).args(args).current_dir(self.dir()).output();
        let ok = probe.as_ref().is_ok_and(|out| out.status.success());
        assert!(ok, "the {self:?} kit needs {install} (`cargo xtask test` does it): {probe:?}");
    }
}

/// A running kit, killed on drop; its output goes to a log printed if the test fails.
struct KitServer {
    kit: Kit,
    child: Child,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl KitServer {
    async fn start(kit: Kit, broker: &TestBroker) -> KitServer {
        kit.require_runtime();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("kit.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = kit
            .command(port)
            .env("BROKER_URL", format!("http://{}", broker.address))
            .env("SITE_KEY", &broker.site_key)
            .env("SITE_SECRET", &broker.site_secret)
            .env("CONTENT_ID", "article")
            .env("PORT", port.to_string())
            .env_remove("CONTENT_HTML")
            .env("PYTHONUNBUFFERED", "1")
            .env("TMPDIR", dir.path()) // the PHP kit's JWKS cache file
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {kit:?} kit: {e}"));
        let mut server = KitServer { kit, child, base: format!("http://127.0.0.1:{port}"), log, _dir: dir };
        for _ in 0..200 {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the {kit:?} kit exited with {status}");
            }
            if let Ok(response) = reqwest::get(format!("{}/healthz", server.base)).await
                && response.status() == 200
                && response.text().await.is_ok_and(|body| body == "ok")
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the {kit:?} kit did not answer /healthz within 10 s");
    }

    /// `GET /proof?user=…` (no parameter for `None`): (status, JSON).
    async fn proof(&self, user: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(format!("{}/proof", self.base));
        if let Some(user) = user {
            request = request.query(&[("user", user)]);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// `POST /content` with `body`: (status, body text).
    async fn content(&self, body: String) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/content", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn expect_refused(&self, what: &str, body: String, status: u16, code: &str) {
        let kit = self.kit;
        let (got, text) = self.content(body).await;
        assert!(!text.contains(MARKER), "{kit:?} {what}: content leaked: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{kit:?} {what}: {text}"));
        assert_eq!((got, answer), (status, json!({"ok": false, "error": code})), "{kit:?}: {what}");
    }
}

impl Drop for KitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {:?} kit output ---\n{log}--- end ---", self.kit);
        }
    }
}

/// The user proof as the broker checks it (docs/PROTOCOL.md), computed independently of the kits.
fn user_proof(secret: &str, site: &str, user: &str, exp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("minepass-user-proof-v1\n{site}\n{user}\n{exp}").as_bytes());
    format!("{exp}.{}", hex::encode(mac.finalize().into_bytes()))
}

/// The hello the SDK sends for a publisher's signed-in user, with the proof the publisher's server
/// minted.
fn kit_hello(site: &str, user: &str, proof: &str, content: &str) -> Value {
    let now = unix_now() * 1000;
    json!({
        "type": "hello", "v": protocol::PROTOCOL_VERSION, "site": site, "user": user, "user_proof": proof,
        "content": content,
        "consent": {"id": "consent-kits", "given_at": now - 1000, "expires_at": now + 86_400_000},
        "client": {"threads": 2, "simd": false, "hashrate": 1000},
    })
}

/// Mines a session for `user` until the broker unlocks `content`; its token.
async fn mine_token(broker: &TestBroker, site: &str, user: &str, proof: &str, content: &str) -> String {
    let mut socket = broker.connect().await;
    send(&mut socket, &kit_hello(site, user, proof, content)).await;
    let (mut job, mut position) = (None, 0);
    loop {
        let mut submit = false;
        match recv(&mut socket).await {
            ServerMessage::Welcome(_) | ServerMessage::Accepted { .. } => {}
            ServerMessage::Job(next) => (job, position, submit) = (Some(next), 0, true),
            ServerMessage::Progress(progress) => submit = progress.done.0 < progress.required.0,
            ServerMessage::Unlock { content: unlocked, token, .. } if unlocked == content => return token,
            other => panic!("mining {content} at {site}: unexpected {other:?}"),
        }
        if let (true, Some(job)) = (submit, &job) {
            let (nonce, next) = mine_from(job, position);
            position = next;
            let nonce = protocol::format_nonce(nonce);
            send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": nonce})).await;
        }
    }
}

/// A JWT's decoded header and payload.
fn header_and_payload(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut json = || serde_json::from_slice(&B64.decode(parts.next().unwrap()).unwrap()).unwrap();
    (json(), json())
}

fn encode(header: &Value, payload: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(payload.to_string()))
}

/// The classic algorithm confusion: HS256 with the Ed25519 public key as the HMAC secret.
fn hs256(kid: &str, payload: &Value, public_key: &[u8]) -> String {
    let unsigned = encode(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), payload, "");
    let mut mac = Hmac::<Sha256>::new_from_slice(public_key).unwrap();
    mac.update(unsigned.trim_end_matches('.').as_bytes());
    format!("{unsigned}{}", B64.encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}
