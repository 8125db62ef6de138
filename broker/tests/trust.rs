//! What the broker enforces rather than trusts, against the real server on loopback with real
//! WebSocket clients and its real SQLite file: users are proven, not claimed (publisher-vouched ids
//! need their proof, anonymous ids their secret, and a hello naming someone else's id reaches none
//! of their credits, progress or tokens); consent records must be plausible; sealed content stays
//! ciphertext until an unlock; and a copy of the ledger alone can neither mint tokens nor open
//! sealed content.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use futures_util::StreamExt;
use minepass::protocol::{self, ErrorCode, ServerMessage, Welcome};
use minepass_broker::identity::user_proof;
use minepass_broker::store::{Ledger, Location, now_ms};
use minepass_broker::vault::Vault;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends `hello` and expects a fatal `code` followed by the policy close.
async fn refused(broker: &TestBroker, hello: &Value, code: ErrorCode) {
    let mut socket = broker.connect().await;
    send(&mut socket, hello).await;
    match recv(&mut socket).await {
        ServerMessage::Error { code: got, fatal: true, message } => {
            assert_eq!(got, code, "{message}: {hello}")
        }
        other => panic!("{hello}: expected error {code}, got {other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(close)))) => assert_eq!(u16::from(close.code), 1008),
        other => panic!("expected close 1008, got {other:?}"),
    }
}

/// Mines the session's jobs until `unlock`; returns the unlock token.
async fn mine_until_unlock(socket: &mut Socket, job: protocol::Job) -> String {
    let frames = frames_until_unlock(socket, job).await;
    match serde_json::from_str(frames.last().unwrap()).unwrap() {
        ServerMessage::Unlock { token, .. } => token,
        other => panic!("expected unlock, got {other:?}"),
    }
}

async fn welcome_of(socket: &mut Socket) -> Welcome {
    match recv(socket).await {
        ServerMessage::Welcome(welcome) => welcome,
        other => panic!("expected welcome, got {other:?}"),
    }
}

async fn first_job(socket: &mut Socket) -> protocol::Job {
    match recv(socket).await {
        ServerMessage::Job(job) => job,
        other => panic!("expected job, got {other:?}"),
    }
}

#[tokio::test]
async fn naming_another_visitors_id_without_its_proof_reaches_nothing_of_theirs() {
    let broker = TestBroker::start().await;
    // reader-42, vouched by the publisher, unlocks the article and keeps credits.
    let (mut socket, job) = open_session(&broker, "reader-42").await;
    let token = mine_until_unlock(&mut socket, job).await;
    drop(socket);
    let (_, verified) = broker.verify_token(&broker.site_secret, &token).await;
    assert_eq!(verified["claims"]["sub"], json!("reader-42"));
    let before = broker.ledger.share_totals().await.unwrap();

    // The attack from the issue: a fresh connection that just says `user: "reader-42"`.
    let mut bare = anonymous_hello(&broker.site_key, Some("article"));
    bare["user"] = json!("reader-42");
    refused(&broker, &bare, ErrorCode::BadUserProof).await;
    // Proofs that are not reader-42's at this site, now.
    let exp = now_ms() / 1000 + 3600;
    let other_site = broker.ledger.add_site("Other").await.unwrap();
    let cases = [
        user_proof("secret_guessed", &broker.site_key, "reader-42", exp),
        user_proof(&other_site.secret, &broker.site_key, "reader-42", exp),
        user_proof(&broker.site_secret, &other_site.key, "reader-42", exp),
        user_proof(&broker.site_secret, &broker.site_key, "reader-43", exp),
        user_proof(&broker.site_secret, &broker.site_key, "reader-42", now_ms() / 1000 - 1),
        user_proof(&broker.site_secret, &broker.site_key, "reader-42", exp + 40 * 86_400),
        "not-a-proof".into(),
    ];
    for proof in cases {
        let mut forged = bare.clone();
        forged["user_proof"] = json!(proof);
        refused(&broker, &forged, ErrorCode::BadUserProof).await;
    }
    // An anonymous secret does not stand in for a publisher's proof.
    let mut with_secret = bare.clone();
    with_secret["user_secret"] = json!("usec_00");
    refused(&broker, &with_secret, ErrorCode::BadUserProof).await;
    assert_eq!(broker.ledger.share_totals().await.unwrap(), before, "refusals change nothing");

    // With the real proof, reader-42 gets their progress and a fresh token, as before.
    let mut again = broker.connect().await;
    send(&mut again, &hello(&broker.site_key, &broker.site_secret, "reader-42", Some("article"))).await;
    let welcome = welcome_of(&mut again).await;
    assert_eq!((welcome.user.as_str(), welcome.user_secret), ("reader-42", None));
    assert_eq!(welcome.progress[0].done.0, CONTENT_WORK);
    assert_eq!(welcome.credits.0, CONTENT_WORK);
    first_job(&mut again).await;
    assert!(matches!(recv(&mut again).await, ServerMessage::Unlock { .. }));
}

#[tokio::test]
async fn a_resume_token_continues_only_its_own_users_session() {
    let broker = TestBroker::start().await;
    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&broker.site_key, &broker.site_secret, "reader-1", Some("article"))).await;
    let welcome = welcome_of(&mut socket).await;
    drop(socket);
    // The genuine owner resumes the session.
    let mut owner = hello(&broker.site_key, &broker.site_secret, "reader-1", Some("article"));
    owner["resume"] = json!(welcome.resume);
    let mut socket = broker.connect().await;
    send(&mut socket, &owner).await;
    assert_eq!(welcome_of(&mut socket).await.session, welcome.session);
    // Someone else presenting it (with their own valid proof) gets a session of their own.
    let mut other = hello(&broker.site_key, &broker.site_secret, "reader-2", Some("article"));
    other["resume"] = json!(welcome.resume);
    let mut socket = broker.connect().await;
    send(&mut socket, &other).await;
    let theirs = welcome_of(&mut socket).await;
    assert_ne!(theirs.session, welcome.session);
    assert_eq!(theirs.user, "reader-2");
}

#[tokio::test]
async fn an_anonymous_visitor_gets_an_id_and_a_secret_and_only_the_secret_reopens_it() {
    let broker = TestBroker::start().await;
    let mut socket = broker.connect().await;
    send(&mut socket, &anonymous_hello(&broker.site_key, Some("article"))).await;
    let welcome = welcome_of(&mut socket).await;
    let user = welcome.user.clone();
    let secret = welcome.user_secret.clone().expect("a new anonymous visitor gets a secret");
    assert!(user.starts_with("anon_") && secret.starts_with("usec_"), "{user} {secret}");
    let job = first_job(&mut socket).await;
    send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(mine(&job))}))
        .await;
    let ServerMessage::Accepted { credits, .. } = recv(&mut socket).await else {
        panic!("expected accepted")
    };
    assert!(credits.0 > 0);
    drop(socket);

    // The secret is nowhere in the ledger: only the id (a hash of it) is.
    let dump = ledger_dump(&broker).await;
    assert!(dump.contains(&user) && !dump.contains(&secret));

    // Back with id and secret: the same credits, and no new secret.
    let mut back = anonymous_hello(&broker.site_key, Some("article"));
    back["user"] = json!(user);
    back["user_secret"] = json!(secret);
    let mut socket = broker.connect().await;
    send(&mut socket, &back).await;
    let again = welcome_of(&mut socket).await;
    assert_eq!(
        (again.user.as_str(), again.user_secret.as_deref(), again.credits),
        (user.as_str(), None, credits)
    );

    // The id without its secret, with another visitor's secret, or vouched by a publisher proof.
    let mut no_secret = back.clone();
    no_secret.as_object_mut().unwrap().remove("user_secret");
    refused(&broker, &no_secret, ErrorCode::BadUserProof).await;
    let mut socket = broker.connect().await;
    send(&mut socket, &anonymous_hello(&broker.site_key, None)).await;
    let stranger = welcome_of(&mut socket).await;
    assert_ne!(stranger.user, user);
    let mut wrong = back.clone();
    wrong["user_secret"] = json!(stranger.user_secret.unwrap());
    refused(&broker, &wrong, ErrorCode::BadUserProof).await;
    let mut vouched = no_secret.clone();
    vouched["user_proof"] =
        json!(user_proof(&broker.site_secret, &broker.site_key, &user, now_ms() / 1000 + 60));
    refused(&broker, &vouched, ErrorCode::BadUserProof).await;
    // A stranger's fresh identity starts from nothing.
    assert_eq!(stranger.credits.0, 0);
}

#[tokio::test]
async fn a_site_from_before_user_proofs_vouches_only_after_its_secret_is_rotated() {
    let broker = TestBroker::start().await;
    // What the migration leaves for an old site: its secret's hash, no sealed copy.
    let forget = format!("UPDATE sites SET sealed_secret = NULL WHERE site_key = '{}'", broker.site_key);
    raw_execute(&broker.location, &[&forget]).await.unwrap();
    let vouched = hello(&broker.site_key, &broker.site_secret, "reader-9", None);
    refused(&broker, &vouched, ErrorCode::BadUserProof).await;
    let rotated = broker.ledger.rotate_site_secret(&broker.site_key).await.unwrap();
    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&broker.site_key, &rotated.secret, "reader-9", None)).await;
    assert_eq!(welcome_of(&mut socket).await.user, "reader-9");
    // The old secret no longer authenticates anything.
    assert_eq!(broker.verify_token(&broker.site_secret, "x").await.0, 401);
}

#[tokio::test]
async fn a_consent_record_from_the_future_or_longer_than_the_site_allows_is_refused() {
    let broker = TestBroker::start().await;
    let now = now_ms() as u64;
    let with = |given_at: u64, expires_at: u64| {
        let mut frame = hello(&broker.site_key, &broker.site_secret, "reader-5", None);
        frame["consent"] = json!({"id": "c-1", "given_at": given_at, "expires_at": expires_at});
        frame
    };
    // Dated ten minutes ahead (more than the allowed clock skew), or valid for a year.
    refused(&broker, &with(now + 600_000, now + 3_600_000), ErrorCode::ConsentRequired).await;
    refused(&broker, &with(now - 1000, now + 365 * 86_400_000), ErrorCode::ConsentRequired).await;
    // A minute of clock skew and a week of validity are fine (the default maximum is 168 h).
    let mut socket = broker.connect().await;
    send(&mut socket, &with(now + 60_000, now + 7 * 86_400_000)).await;
    welcome_of(&mut socket).await;
    // The site can allow less.
    broker.ledger.set_consent_max_hours(&broker.site_key, 24).await.unwrap();
    refused(&broker, &with(now - 1000, now + 2 * 86_400_000), ErrorCode::ConsentRequired).await;
}

/// Every text and blob value of the ledger, as one string (for "is this secret stored?").
async fn ledger_dump(broker: &TestBroker) -> String {
    use sqlx::Row;
    let mut dump = String::new();
    let mut add = |text: Option<String>, blob: Option<Vec<u8>>| {
        if let Some(text) = text {
            dump.push_str(&text);
        } else if let Some(blob) = blob {
            dump.push_str(&String::from_utf8_lossy(&blob));
        }
        dump.push('\n');
    };
    match &broker.location {
        Location::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            for table in tables {
                for row in sqlx::query(&format!("SELECT * FROM \"{table}\"")).fetch_all(&pool).await.unwrap()
                {
                    for index in 0..row.len() {
                        add(row.try_get(index).ok().flatten(), row.try_get(index).ok().flatten());
                    }
                }
            }
        }
        Location::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = 'public'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            for (table, column, kind) in columns {
                let bytes = kind == "bytea";
                let cast =
                    if bytes { format!("\"{column}\"") } else { format!("CAST(\"{column}\" AS TEXT)") };
                for row in
                    sqlx::query(&format!("SELECT {cast} FROM \"{table}\"")).fetch_all(&pool).await.unwrap()
                {
                    if bytes {
                        add(None, row.get(0));
                    } else {
                        add(row.get(0), None);
                    }
                }
            }
        }
    }
    dump
}

const GATED: &str = "<section><h2>Part two</h2><p>The sealed half of the article.</p></section>";

/// Seals the test site's article through the admin API; returns the sealed string.
async fn seal_article(broker: &TestBroker, admin: &str, html: &str) -> Value {
    let path = format!("/sites/{}/content/article/sealed", broker.site_key);
    let (status, answer) = broker.admin("PUT", &path, admin, Some(json!({"html": html}))).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn fetch_sealed(broker: &TestBroker) -> (u16, Value) {
    let url = format!("http://{}/api/v1/sealed/{}/article", broker.address, broker.site_key);
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every frame until (and with) the `unlock`, mining as it goes.
async fn frames_until_unlock(socket: &mut Socket, mut job: protocol::Job) -> Vec<String> {
    let mut frames = Vec::new();
    let mut position = 0;
    loop {
        let (nonce, next) = mine_from(&job, position);
        position = next;
        send(socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)})).await;
        loop {
            let Some(Ok(Message::Text(text))) =
                tokio::time::timeout(Duration::from_millis(200), socket.next()).await.unwrap_or(None)
            else {
                break;
            };
            frames.push(text.to_string());
            match serde_json::from_str(&text).unwrap() {
                ServerMessage::Unlock { .. } => return frames,
                ServerMessage::Job(next_job) => {
                    job = next_job;
                    position = 0;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn sealed_content_is_ciphertext_until_the_unlock_brings_its_key() {
    let broker = TestBroker::start().await;
    let admin = broker.ledger.add_admin_token("test").await.unwrap();
    // The API refuses what it cannot seal, changing nothing.
    let path = format!("/sites/{}/content/article/sealed", broker.site_key);
    assert_eq!(broker.admin("PUT", &path, "admin_wrong", Some(json!({"html": GATED}))).await.0, 401);
    let nope = format!("/sites/{}/content/nope/sealed", broker.site_key);
    assert_eq!(broker.admin("PUT", &nope, &admin, Some(json!({"html": GATED}))).await.0, 404);
    let (status, answer) = broker.admin("PUT", &path, &admin, Some(json!({"html": ""}))).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("bad_html")));
    assert_eq!(fetch_sealed(&broker).await.0, 404, "not sealed yet");

    let sealed = seal_article(&broker, &admin, GATED).await;
    assert_eq!(sealed["version"], 1);
    let (status, fetched) = fetch_sealed(&broker).await;
    assert_eq!((status, &fetched["sealed"]), (200, &sealed["sealed"]));
    let text = fetched["sealed"].as_str().unwrap().to_owned();
    assert!(text.starts_with("mp1.1.") && !text.contains("sealed half"), "{text}");

    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&broker.site_key, &broker.site_secret, "reader-7", Some("article"))).await;
    let welcome = recv(&mut socket).await;
    let job = first_job(&mut socket).await;
    let frames = frames_until_unlock(&mut socket, job).await;
    let ServerMessage::Unlock { token, keys, .. } = serde_json::from_str(frames.last().unwrap()).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(keys.len(), 1);
    let key: [u8; 32] = B64.decode(&keys[0].key).unwrap().try_into().unwrap();
    let opened = minepass_broker::store::seals::decrypt(&broker.site_key, "article", &text, &key).unwrap();
    assert_eq!(opened, GATED.as_bytes());
    // The key travels in the unlock only: not in the welcome, a job, a progress or accepted frame,
    // the token's claims, the JWKS or the public ciphertext.
    let before_unlock =
        [&[serde_json::to_string(&welcome).unwrap()][..], &frames[..frames.len() - 1]].concat();
    assert!(before_unlock.iter().all(|f| !f.contains(&keys[0].key)));
    let claims = String::from_utf8(B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let jwks = reqwest::get(format!("http://{}/.well-known/jwks.json", broker.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for public in [&claims, &jwks, &fetched.to_string()] {
        assert!(!public.contains(&keys[0].key), "{public}");
    }

    // Re-sealing adds a version; an unlocked visitor gets both keys, and tokens issued before still verify.
    let second = seal_article(&broker, &admin, "<p>Revised.</p>").await;
    assert_eq!(second["version"], 2);
    let mut again = broker.connect().await;
    send(&mut again, &hello(&broker.site_key, &broker.site_secret, "reader-7", Some("article"))).await;
    recv(&mut again).await;
    first_job(&mut again).await;
    let ServerMessage::Unlock { keys, .. } = recv(&mut again).await else { panic!("expected unlock") };
    assert_eq!(keys.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(broker.verify_token(&broker.site_secret, &token).await.1["ok"], true);
    // Retiring the old versions leaves only the new key.
    let (_, third) = broker
        .admin("PUT", &path, &admin, Some(json!({"html": "<p>Third.</p>", "retire_previous": true})))
        .await;
    let mut again = broker.connect().await;
    send(&mut again, &hello(&broker.site_key, &broker.site_secret, "reader-7", Some("article"))).await;
    recv(&mut again).await;
    first_job(&mut again).await;
    let ServerMessage::Unlock { keys, .. } = recv(&mut again).await else { panic!("expected unlock") };
    assert_eq!(
        keys.iter().map(|k| k.version).collect::<Vec<_>>(),
        [third["version"].as_u64().unwrap() as u32]
    );
}

/// The ledger's bytes as a copy would hold them: the database file and its write-ahead log.
fn ledger_bytes(broker: &TestBroker) -> Vec<u8> {
    let path = broker.ledger_path();
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("sqlite-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_copy_of_the_ledger_alone_mints_no_token_and_opens_no_sealed_content() {
    if skip_on_postgres("a_copy_of_the_ledger_alone…", "it reads the SQLite file and its WAL byte by byte")
    {
        return;
    }
    let broker = TestBroker::start().await;
    let admin = broker.ledger.add_admin_token("test").await.unwrap();
    seal_article(&broker, &admin, GATED).await;
    let (mut socket, job) = open_session(&broker, "reader-8").await;
    let frames = frames_until_unlock(&mut socket, job).await;
    let ServerMessage::Unlock { keys, token, .. } = serde_json::from_str(frames.last().unwrap()).unwrap()
    else {
        unreachable!()
    };
    let content_key = B64.decode(&keys[0].key).unwrap();
    let seeds: Vec<[u8; 32]> = broker.ledger.signing_keys().await.unwrap().into_iter().map(|k| k.1).collect();
    let bytes = ledger_bytes(&broker);
    assert!(!contains(&bytes, &content_key), "the content key is in the ledger file");
    assert!(!contains(&bytes, b"The sealed half"), "the gated HTML is in the ledger file");
    assert!(!contains(&bytes, broker.site_secret.as_bytes()), "the site secret is in the ledger file");
    for seed in &seeds {
        assert!(!contains(&bytes, seed), "a signing seed is in the ledger file");
    }

    // An attacker with the copy tries every stored signing-key blob as a seed: the broker refuses
    // every token so made.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", broker.ledger_path().display())).await.unwrap();
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, sealed_seed FROM signing_keys").fetch_all(&pool).await.unwrap();
    assert!(!rows.is_empty());
    let payload = token.split('.').nth(1).unwrap();
    for (kid, blob) in &rows {
        for window in blob.windows(32) {
            let key = ed25519_dalek::SigningKey::from_bytes(window.try_into().unwrap());
            let forged_header = B64.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string());
            let input = format!("{forged_header}.{payload}");
            let signature = ed25519_dalek::Signer::sign(&key, input.as_bytes());
            let forged = format!("{input}.{}", B64.encode(signature.to_bytes()));
            let (_, answer) = broker.verify_token(&broker.site_secret, &forged).await;
            assert_eq!(answer["error"], "bad_signature", "{answer}");
        }
    }

    // And a broker started on the copy with any other key refuses to open it.
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("ledger.sqlite");
    sqlx::query("VACUUM INTO ?").bind(copied.display().to_string()).execute(&pool).await.unwrap();
    let error =
        Ledger::open(&copied, std::sync::Arc::new(Vault::ephemeral())).await.err().unwrap().to_string();
    assert!(error.contains("does not match this ledger"), "{error}");
}

#[tokio::test]
async fn plaintext_signing_keys_of_an_older_ledger_are_sealed_erased_and_retired() {
    if skip_on_postgres("plaintext_signing_keys_of_an_older_ledger…", "PostgreSQL ledgers never had them") {
        return;
    }
    let broker = TestBroker::start().await;
    // An older ledger's key, as the migration leaves it: plaintext in `legacy_seed`.
    let legacy_seed = [0x5au8; 32];
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", broker.ledger_path().display())).await.unwrap();
    sqlx::query("INSERT INTO signing_keys (kid, legacy_seed, created_at) VALUES ('legacykid', ?, ?)")
        .bind(&legacy_seed[..])
        .bind(now_ms())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE signing_keys SET retired_at = NULL WHERE kid = 'legacykid'")
        .execute(&pool)
        .await
        .unwrap();
    drop(pool);
    assert!(contains(&ledger_bytes(&broker), &legacy_seed));
    let tokens = minepass_broker::tokens::Tokens::load(&broker.ledger, "http://issuer".into()).await.unwrap();
    assert!(!contains(&ledger_bytes(&broker), &legacy_seed), "the plaintext seed is still in the file");
    let keys = broker.ledger.signing_keys().await.unwrap();
    let legacy = keys.iter().find(|k| k.0 == "legacykid").expect("the key is kept, sealed");
    assert_eq!(legacy.1, legacy_seed);
    assert!(legacy.3.is_some(), "the once-plaintext key is retired");
    // A new active key signs from now on; the old one stays published for its tokens' lifetime.
    let (token, _) = tokens.issue("u", "s", "c", 1, 0);
    assert!(!token.starts_with(&B64.encode(r#"{"alg":"EdDSA","typ":"JWT","kid":"legacykid"}"#)));
    assert!(tokens.jwks()["keys"].as_array().unwrap().iter().any(|k| k["kid"] == "legacykid"));
}

#[tokio::test]
async fn an_older_ledger_migrates_without_losing_anyones_work() {
    if skip_on_postgres("an_older_ledger_migrates…", "the old ledgers are SQLite's migrations 0001-0007") {
        return;
    }
    // A ledger as the broker before user proofs left it: migrations 0001-0007 only, a site with a
    // hashed secret, users with shares, progress and credits, a plaintext signing seed and resume key,
    // and consent answers without visitors.
    let dir = tempfile::tempdir().unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0008" {
            std::fs::copy(&path, old_migrations.join(name)).unwrap();
        }
    }
    let path = dir.path().join("ledger.sqlite");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let old = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(old_migrations.as_path()).await.unwrap().run(&old).await.unwrap();
    let secret = "secret_old";
    let script = format!(
        "INSERT INTO sites (id, site_key, name, secret_hash, created_at) VALUES (1, 'site_old', 'Old', '{}', 0);
         INSERT INTO content (id, site_id, content_key, title, required_work, created_at) VALUES (1, 1, 'article', 'A', '2', 0);
         INSERT INTO users (id, site_id, external_id, created_at) VALUES (1, 1, 'reader-42', 0), (2, 1, 'anon-123456789', 0);
         INSERT INTO progress (user_id, content_id, work, unlocked_at) VALUES (1, 1, '2', 5);
         INSERT INTO user_work (user_id, earned) VALUES (1, '2'), (2, '1');
         INSERT INTO signing_keys (kid, seed, created_at) VALUES ('oldkid', X'{}', 0);
         INSERT INTO settings (name, value) VALUES ('resume_key', '{}');
         INSERT INTO consent_answers (site_id, given, at) VALUES (1, 1, {now});",
        minepass_broker::store::hash_secret(secret),
        "77".repeat(32),
        "88".repeat(32),
        now = now_ms(),
    );
    sqlx::raw_sql(&script).execute(&old).await.unwrap();
    // Three shares of work 1 each (the all-ones target: any header meets it), re-verifiable.
    for (index, user) in [1, 1, 2].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO shares (session, job_id, nonce, site_id, user_id, content_id, header, target, work, created_at)
             VALUES ('s', ?, 0, 1, ?, 1, ?, ?, '1', 0)",
        )
        .bind(format!("job-{index}"))
        .bind(user)
        .bind(&[index as u8; 80][..])
        .bind(&[0xffu8; 32][..])
        .execute(&old)
        .await
        .unwrap();
    }
    old.close().await;

    let ledger = Ledger::open(&path, std::sync::Arc::new(Vault::ephemeral())).await.unwrap();
    minepass_broker::tokens::Tokens::load(&ledger, "http://issuer".into()).await.unwrap();
    assert_eq!(ledger.share_totals().await.unwrap(), (3, 3), "every share is still there");
    assert_eq!(ledger.progress(1, "reader-42").await.unwrap(), vec![(1, 2)]);
    assert_eq!(ledger.credits(1, "reader-42").await.unwrap(), 2);
    assert_eq!(ledger.credits(1, "anon-123456789").await.unwrap(), 1);
    let report = ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let bytes = std::fs::read(&path).unwrap();
    assert!(!contains(&bytes, &[0x77; 32]), "the plaintext seed is still in the file");
    assert!(!contains(&bytes, "88".repeat(32).as_bytes()), "the plaintext resume key is still in the file");
    assert_eq!(
        ledger.consent_counts(None, 0).await.unwrap(),
        (0, 0),
        "answers from before the rules are not counted"
    );
    // The old site vouches again once its secret is rotated, and reader-42's work is theirs.
    let site = ledger.site_by_key("site_old").await.unwrap().unwrap();
    assert!(ledger.site_secret(&site).unwrap().is_none());
    let rotated = ledger.rotate_site_secret("site_old").await.unwrap();
    let site = ledger.site_by_key("site_old").await.unwrap().unwrap();
    assert_eq!(ledger.site_secret(&site).unwrap(), Some(rotated.secret));
}
