//! Integration tests of the broker: the real server on a loopback port, driven by real WebSocket
//! clients (tokio-tungstenite) that mine natively with the `minepass` kernel at low difficulty.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use jwt_simple::prelude::*;
use minepass::protocol::{self, ErrorCode, ServerMessage};
use minepass::target::Target;
use minepass_broker::store::Ledger;
use minepass_broker::vault::KeySource;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hello_job_shares_progress_until_the_quota_is_met() {
    let broker = TestBroker::start().await;
    let (mut socket, job) = open_session(&broker, "alice").await;
    assert_eq!(job.work.0, 1 << 12);
    let mut credited = 0u128;
    let mut position = 0;
    while credited < CONTENT_WORK {
        let (found, next) = mine_from(&job, position);
        position = next;
        let nonce = protocol::format_nonce(found);
        send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": nonce})).await;
        match recv(&mut socket).await {
            ServerMessage::Accepted { work, nonce: echoed, .. } => {
                assert_eq!(echoed, nonce);
                credited += work.0;
            }
            other => panic!("expected accepted, got {other:?}"),
        }
        let ServerMessage::Progress(progress) = recv(&mut socket).await else { panic!("expected progress") };
        assert_eq!(progress.content, "article");
        assert_eq!(progress.done.0, credited);
        assert_eq!(progress.required.0, CONTENT_WORK);
        // Every accepted share is already durable: the ledger agrees before we send the next one.
        assert_eq!(broker.ledger.share_totals().await.unwrap().1, credited);
    }
    assert_eq!(credited, CONTENT_WORK);
    let ServerMessage::Unlock { content, token, .. } = recv(&mut socket).await else {
        panic!("expected unlock")
    };
    assert_eq!(content, "article");

    // A publisher verifies the token with an independent JWT library, from the JWKS alone.
    let http = reqwest::Client::new();
    let jwks: Value = http
        .get(format!("http://{}/.well-known/jwks.json", broker.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let x =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, jwk["x"].as_str().unwrap())
            .unwrap();
    let key = Ed25519PublicKey::from_bytes(&x).unwrap();
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from_strings(&[&broker.site_key])),
        allowed_issuers: Some(HashSet::from_strings(&[format!("http://{}", broker.address)])),
        ..Default::default()
    };
    let claims = key
        .verify_token::<ContentClaims>(&token, Some(options))
        .expect("independent library accepts the token");
    assert_eq!(claims.subject.as_deref(), Some("alice"));
    assert_eq!(claims.custom.content, "article");
    assert_eq!(claims.custom.work, CONTENT_WORK.to_string());
    assert!(claims.jwt_id.is_some());
    let wrong = VerificationOptions {
        allowed_audiences: Some(HashSet::from_strings(&["site_other"])),
        ..Default::default()
    };
    assert!(key.verify_token::<ContentClaims>(&token, Some(wrong)).is_err());

    // Then consumes it once through the verify API.
    let (status, _) = broker.verify_token("secret_wrong", &token).await;
    assert_eq!(status, 401);
    let (_, first) = broker.verify_token(&broker.site_secret, &token).await;
    assert_eq!(first["ok"], json!(true), "{first}");
    assert_eq!(first["claims"]["sub"], json!("alice"));
    let (_, second) = broker.verify_token(&broker.site_secret, &token).await;
    assert_eq!(second, json!({"ok": false, "error": "already_used"}));

    // Coming back later: the progress is durable and a fresh token is issued at hello.
    drop(socket);
    let mut again = broker.connect().await;
    send(&mut again, &hello(&broker.site_key, &broker.site_secret, "alice", Some("article"))).await;
    let ServerMessage::Welcome(welcome) = recv(&mut again).await else { panic!("expected welcome") };
    assert_eq!(welcome.progress[0].done.0, CONTENT_WORK);
    assert!(matches!(recv(&mut again).await, ServerMessage::Job(_)));
    let ServerMessage::Unlock { token: fresh, .. } = recv(&mut again).await else {
        panic!("expected unlock")
    };
    assert_ne!(fresh, token);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContentClaims {
    content: String,
    work: String,
}

#[tokio::test]
async fn a_token_for_another_site_fails_the_verify_api_with_wrong_audience() {
    let broker = TestBroker::start().await;
    let other = broker.ledger.add_site("Other").await.unwrap();
    broker.ledger.put_content(&other.key, "article", "Other article", 1 << 12).await.unwrap();
    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&other.key, &other.secret, "carol", Some("article"))).await;
    let _welcome = recv(&mut socket).await;
    let ServerMessage::Job(job) = recv(&mut socket).await else { panic!("expected job") };
    send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(mine(&job))}))
        .await;
    assert!(matches!(recv(&mut socket).await, ServerMessage::Accepted { .. }));
    assert!(matches!(recv(&mut socket).await, ServerMessage::Progress(_)));
    let ServerMessage::Unlock { token, .. } = recv(&mut socket).await else { panic!("expected unlock") };
    let (_, answer) = broker.verify_token(&broker.site_secret, &token).await;
    assert_eq!(answer, json!({"ok": false, "error": "wrong_audience"}));
}

#[tokio::test]
async fn a_nonce_in_upper_case_is_the_same_share_as_in_lower_case() {
    let broker = TestBroker::start().await;
    let (mut socket, job) = open_session(&broker, "henry").await;
    let nonce = protocol::format_nonce(mine(&job));
    send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": nonce.to_uppercase()})).await;
    assert!(matches!(recv(&mut socket).await, ServerMessage::Accepted { .. }));
    assert!(matches!(recv(&mut socket).await, ServerMessage::Progress(_)));
    expect_rejected(
        &mut socket,
        json!({"type": "submit", "job": job.id, "nonce": nonce}),
        ErrorCode::Duplicate,
    )
    .await;
}

/// Sends a submit and expects it rejected with `code`.
async fn expect_rejected(socket: &mut Socket, submit: Value, code: ErrorCode) {
    send(socket, &submit).await;
    match recv(socket).await {
        ServerMessage::Rejected { code: got, .. } => assert_eq!(got, code, "{submit}"),
        other => panic!("{submit}: expected rejected {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bad_share_is_rejected_with_its_code_and_credits_nothing() {
    let broker = TestBroker::start().await;
    let (mut socket, job) = open_session(&broker, "bob").await;
    let nonce = mine(&job);
    let good = protocol::format_nonce(nonce);
    expect_rejected(
        &mut socket,
        json!({"type": "submit", "job": job.id, "nonce": "zzzzzzzz"}),
        ErrorCode::BadNonce,
    )
    .await;
    expect_rejected(
        &mut socket,
        json!({"type": "submit", "job": "nope.1", "nonce": good}),
        ErrorCode::UnknownJob,
    )
    .await;
    let above = (1..).map(|i| nonce.wrapping_add(i)).find(|&n| {
        let mut header = hex::decode(&job.header).unwrap();
        header[76..].copy_from_slice(&n.to_le_bytes());
        let target = Target::from_le_bytes(&hex::decode(&job.target).unwrap()).unwrap();
        !target.is_met_by(&minepass::baseline::sha256d(&header))
    });
    expect_rejected(
        &mut socket,
        json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(above.unwrap())}),
        ErrorCode::AboveTarget,
    )
    .await;
    assert_eq!(broker.ledger.share_totals().await.unwrap(), (0, 0), "nothing credited by bad shares");
    send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": good})).await;
    assert!(matches!(recv(&mut socket).await, ServerMessage::Accepted { .. }));
    let _progress = recv(&mut socket).await;
    expect_rejected(
        &mut socket,
        json!({"type": "submit", "job": job.id, "nonce": good}),
        ErrorCode::Duplicate,
    )
    .await;
    assert_eq!(broker.ledger.share_totals().await.unwrap(), (1, 1 << 12));
}

#[tokio::test]
async fn an_exhausted_job_is_replaced_on_request_and_its_shares_stay_valid_for_one_more_job() {
    let broker = TestBroker::start().await;
    let (mut socket, first) = open_session(&broker, "gina").await;
    send(&mut socket, &json!({"type": "more", "job": first.id})).await;
    let ServerMessage::Job(second) = recv(&mut socket).await else { panic!("expected a new job") };
    assert_ne!(second.id, first.id);
    assert_ne!(second.header, first.header, "a new search space");
    assert_eq!((second.target.as_str(), second.work), (first.target.as_str(), first.work), "same share size");
    // Asking again for the replaced job is refused (the client already has newer work).
    let more_for_first = text(json!({"type": "more", "job": first.id}));
    expect_error(&mut socket, more_for_first, ErrorCode::StaleJob, None).await;
    // A share found on the replaced job just before it was replaced still counts.
    let late = protocol::format_nonce(mine(&first));
    send(&mut socket, &json!({"type": "submit", "job": first.id, "nonce": late})).await;
    assert!(matches!(recv(&mut socket).await, ServerMessage::Accepted { .. }));
}

// --- Bad input: each gets its error code, credits nothing and leaves the broker up. ---

/// Sends `frame` and expects an error with `code`; a fatal one must be followed by a close frame with
/// `close_code`.
async fn expect_error(socket: &mut Socket, frame: Message, code: ErrorCode, close_code: Option<u16>) {
    socket.send(frame).await.unwrap();
    match recv(socket).await {
        ServerMessage::Error { code: got, fatal, .. } => {
            assert_eq!(got, code);
            assert_eq!(fatal, close_code.is_some(), "{code}: fatal flag");
        }
        other => panic!("expected error {code}, got {other:?}"),
    }
    if let Some(close_code) = close_code {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.unwrap();
        match frame {
            Some(Ok(Message::Close(Some(close)))) => assert_eq!(u16::from(close.code), close_code),
            other => panic!("expected close {close_code}, got {other:?}"),
        }
    }
}

/// The connection still works: a ping gets its pong.
async fn still_answers(socket: &mut Socket) {
    send(socket, &json!({"type": "ping", "t": 7})).await;
    assert_eq!(recv(socket).await, ServerMessage::Pong { t: 7 });
}

fn text(value: impl ToString) -> Message {
    Message::Text(value.to_string().into())
}

#[tokio::test]
async fn malformed_frames_get_non_fatal_errors_and_the_session_goes_on() {
    let broker = TestBroker::start().await;
    let mut socket = broker.connect().await;
    expect_error(&mut socket, text("{not json"), ErrorCode::BadJson, None).await;
    expect_error(&mut socket, Message::Binary(vec![1, 2, 3].into()), ErrorCode::BinaryFrame, None).await;
    let huge = json!({"type": "ping", "t": 1, "pad": "x".repeat(protocol::MAX_FRAME_BYTES)});
    expect_error(&mut socket, text(huge), ErrorCode::FrameTooLarge, None).await;
    expect_error(&mut socket, text(json!({"type": "mine"})), ErrorCode::UnknownType, None).await;
    expect_error(&mut socket, text(json!({"type": "ping", "t": "soon"})), ErrorCode::BadField, None).await;
    expect_error(
        &mut socket,
        text(json!({"type": "submit", "job": 5, "nonce": 7})),
        ErrorCode::BadField,
        None,
    )
    .await;
    expect_error(
        &mut socket,
        text(json!({"type": "submit", "job": "a.1", "nonce": "00000000"})),
        ErrorCode::HelloRequired,
        None,
    )
    .await;
    let mut no_site = hello(&broker.site_key, &broker.site_secret, "dave", None);
    no_site.as_object_mut().unwrap().remove("site");
    expect_error(&mut socket, text(no_site), ErrorCode::BadField, None).await;
    still_answers(&mut socket).await;
    assert_eq!(broker.ledger.share_totals().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn hello_is_refused_for_version_site_and_consent_problems_and_the_connection_closed() {
    let broker = TestBroker::start().await;
    let disabled = broker.ledger.add_site("Disabled").await.unwrap();
    broker.ledger.set_site_enabled(&disabled.key, false).await.unwrap();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut frame = hello(&broker.site_key, &broker.site_secret, "erin", None);
        edit(&mut frame);
        frame
    };
    let cases = [
        (with(&|h| h["v"] = json!(2)), ErrorCode::UnsupportedVersion),
        (with(&|h| h["site"] = json!("site_unknown")), ErrorCode::UnknownSite),
        (with(&|h| h["site"] = json!(disabled.key)), ErrorCode::SiteDisabled),
        (with(&|h| h["consent"]["expires_at"] = json!(1000)), ErrorCode::ConsentRequired),
        (with(&|h| h["content"] = json!("no-such-content")), ErrorCode::BadField),
        (with(&|h| h["client"]["threads"] = json!(0)), ErrorCode::BadField),
        // The user id limit is 128 bytes of UTF-8: 65 two-byte characters are 130.
        (with(&|h| h["user"] = json!("é".repeat(65))), ErrorCode::BadField),
        (with(&|h| h["user"] = json!("tab\there")), ErrorCode::BadField),
    ];
    for (frame, code) in cases {
        let mut socket = broker.connect().await;
        expect_error(&mut socket, text(&frame), code, Some(1008)).await;
    }
    // A hello with no consent record at all is refused before any work, without closing: the SDK
    // may still ask the visitor and say hello again.
    let mut socket = broker.connect().await;
    let no_consent = with(&|h| drop(h.as_object_mut().unwrap().remove("consent")));
    expect_error(&mut socket, text(&no_consent), ErrorCode::ConsentRequired, None).await;
    still_answers(&mut socket).await;
    // The broker is still up and hands out work to a good hello.
    let (_socket, _job) = open_session(&broker, "erin").await;
    let (_socket, _job) = open_session(&broker, &"é".repeat(64)).await;
    assert_eq!(broker.ledger.share_totals().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn the_admin_api_manages_sites_and_content_and_refuses_bad_requests_changing_nothing() {
    let broker = TestBroker::start().await;
    let token = broker.ledger.add_admin_token("test").await.unwrap();
    let listing = |value: &Value| value["sites"].clone();

    // Authentication: no token, a wrong token and a site secret are all refused.
    for bad in ["", "admin_wrong", broker.site_secret.as_str()] {
        let (status, body) = broker.admin("GET", "/sites", bad, None).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "token {bad:?}");
    }
    // The scheme's name is case-insensitive (RFC 9110), the credential is not.
    for (scheme, status) in [("Bearer", 200), ("bearer", 200), ("BEARER", 200), ("Basic", 401)] {
        let response = reqwest::Client::new()
            .get(format!("http://{}/api/v1/admin/sites", broker.address))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{scheme}");
    }
    assert_eq!(broker.admin("GET", "/sites", &token.to_uppercase(), None).await.0, 401);
    let (status, before) = broker.admin("GET", "/sites", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(listing(&before)[0]["content"][0]["required_work"], CONTENT_WORK.to_string());

    // A new site, then a content item with a u128 quota, as a publisher's operator would.
    let (status, created) = broker.admin("POST", "/sites", &token, Some(json!({"name": "Blog"}))).await;
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap();
    let quota = (u128::MAX - 1).to_string();
    let item = json!({"title": "Long read", "required_work": quota});
    let (status, body) =
        broker.admin("PUT", &format!("/sites/{key}/content/long-read"), &token, Some(item)).await;
    assert_eq!((status, body["content"]["required_work"].as_str()), (200, Some(quota.as_str())));
    // The new secret authenticates the verify API (a junk token is then a token error, not 401).
    assert_eq!(broker.verify_token(secret, "junk").await, (200, json!({"ok": false, "error": "malformed"})));
    let (_, after_add) = broker.admin("GET", "/sites", &token, None).await;
    assert_eq!(listing(&after_add).as_array().unwrap().len(), 2);

    // Bad requests: each has its code and changes nothing.
    let bad_requests = [
        ("POST", "/sites".to_owned(), json!({"name": ""}), 400, "bad_name"),
        ("POST", "/sites".to_owned(), json!({"name": "x", "extra": 1}), 400, "bad_request"),
        (
            "PUT",
            format!("/sites/{key}/content/bad%20id"),
            json!({"title": "t", "required_work": "5"}),
            400,
            "bad_content_id",
        ),
        (
            "PUT",
            format!("/sites/{key}/content/a"),
            json!({"title": "", "required_work": "5"}),
            400,
            "bad_title",
        ),
        (
            "PUT",
            format!("/sites/{key}/content/a"),
            json!({"title": "t", "required_work": "0"}),
            400,
            "bad_required_work",
        ),
        (
            "PUT",
            format!("/sites/{key}/content/a"),
            json!({"title": "t", "required_work": 5}),
            400,
            "bad_request",
        ),
        (
            "PUT",
            format!("/sites/{key}/content/a"),
            json!({"title": "t", "required_work": "-5"}),
            400,
            "bad_request",
        ),
        (
            "PUT",
            "/sites/site_nope/content/a".to_owned(),
            json!({"title": "t", "required_work": "5"}),
            404,
            "not_found",
        ),
        ("PATCH", "/sites/site_nope".to_owned(), json!({"enabled": false}), 404, "not_found"),
        ("PATCH", format!("/sites/{key}"), json!({"enabled": "no"}), 400, "bad_request"),
    ];
    for (method, path, body, status, code) in bad_requests {
        let answer = broker.admin(method, &path, &token, Some(body.clone())).await;
        assert_eq!(answer, (status, json!({"ok": false, "error": code})), "{method} {path} {body}");
    }
    let (_, unchanged) = broker.admin("GET", "/sites", &token, None).await;
    assert_eq!(unchanged, after_add);

    // Disabling a site through the API stops new sessions for it.
    let (status, body) =
        broker.admin("PATCH", &format!("/sites/{key}"), &token, Some(json!({"enabled": false}))).await;
    assert_eq!((status, body["site"]["enabled"].as_bool()), (200, Some(false)));
    let mut socket = broker.connect().await;
    expect_error(&mut socket, text(hello(&key, secret, "frank", None)), ErrorCode::SiteDisabled, Some(1008))
        .await;

    // A revoked token no longer works.
    broker.ledger.revoke_admin_tokens().await.unwrap();
    assert_eq!(broker.admin("GET", "/sites", &token, None).await.0, 401);
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_with_4029() {
    let broker = TestBroker::start_with(|b| {
        b.rate_limit = minepass_broker::session::RateLimit { per_second: 0, burst: 10 }
    })
    .await;
    let mut socket = broker.connect().await;
    for t in 0..10 {
        send(&mut socket, &json!({"type": "ping", "t": t})).await;
        assert_eq!(recv(&mut socket).await, ServerMessage::Pong { t });
    }
    // No refill in this test (0 per second), so timing cannot matter. Past the burst: refused, and
    // after `burst` more refusals, disconnected.
    for _ in 0..10 {
        expect_error(&mut socket, text(json!({"type": "ping", "t": 0})), ErrorCode::RateLimited, None).await;
    }
    expect_error(&mut socket, text(json!({"type": "ping", "t": 0})), ErrorCode::RateLimited, Some(4029))
        .await;
    let (_socket, _job) = open_session(&broker, "frank").await;
}

#[tokio::test]
async fn an_address_over_its_connection_limit_is_refused_with_4031() {
    let broker = TestBroker::start_with(|b| b.max_connections_per_address = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut socket = broker.connect().await;
        still_answers(&mut socket).await;
        open.push(socket);
    }
    let mut refused = broker.connect().await;
    match recv(&mut refused).await {
        ServerMessage::Error { code, fatal, .. } => {
            assert_eq!((code, fatal), (ErrorCode::TooManyConnections, true))
        }
        other => panic!("expected too_many_connections, got {other:?}"),
    }
    // Closing one frees its slot.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = broker.connect().await;
    still_answers(&mut again).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_connection_limit_counts_visitors_not_the_proxy() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let connect_as = |address: std::net::SocketAddr, visitor: &'static str| async move {
        let mut request = format!("ws://{address}/ws").into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", visitor.parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let refused = |mut socket: Socket| async move {
        matches!(recv(&mut socket).await, ServerMessage::Error { code: ErrorCode::TooManyConnections, .. })
    };
    // The test connects from 127.0.0.1: as the fleet's balancer would.
    let behind = TestBroker::start_with(|b| {
        b.max_connections_per_address = 2;
        b.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut open = Vec::new();
    for visitor in ["203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let mut socket = connect_as(behind.address, visitor).await;
        still_answers(&mut socket).await;
        open.push(socket);
    }
    assert!(refused(connect_as(behind.address, "203.0.113.1").await).await, "a third from one visitor");
    // Without trust the header is the client's word: the limit counts the real peer.
    let direct = TestBroker::start_with(|b| b.max_connections_per_address = 2).await;
    let (first, second) =
        (connect_as(direct.address, "203.0.113.1").await, connect_as(direct.address, "203.0.113.2").await);
    assert!(refused(connect_as(direct.address, "203.0.113.3").await).await, "forged addresses are ignored");
    drop((first, second, open));
}

// --- Durability: kill -9 mid-stream, restart, count. ---

#[tokio::test]
async fn acknowledged_credits_survive_sigkill_and_none_is_counted_twice() {
    let data = tempfile::tempdir().unwrap();
    let mut first = start_process(data.path(), &[]);
    let (site, secret) = (first.demo_site.clone(), first.demo_secret.clone());
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", first.address)).await.unwrap();
    send(&mut socket, &hello(&site, &secret, "grace", Some("demo-article"))).await;
    assert!(matches!(recv(&mut socket).await, ServerMessage::Welcome(_)));
    let ServerMessage::Job(mut job) = recv(&mut socket).await else { panic!("expected job") };
    let mut position = 0;
    let mut acked: Vec<(String, u32, u128)> = Vec::new();
    while acked.len() < 25 {
        let (nonce, next) = mine_from(&job, position);
        position = next;
        send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)}))
            .await;
        loop {
            match recv(&mut socket).await {
                ServerMessage::Accepted { work, .. } => acked.push((job.id.clone(), nonce, work.0)),
                ServerMessage::Progress(_) => break,
                ServerMessage::Job(next_job) => {
                    job = next_job;
                    position = 0;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // One more share in flight, then SIGKILL: it may or may not have committed, but never twice.
    let (nonce, _) = mine_from(&job, position);
    send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(nonce)}))
        .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = start_process(data.path(), &[]);
    assert!(second.demo_site.is_empty(), "the restarted broker keeps its ledger and its sites");
    let key = KeySource::Default(data.path().join("master.key"));
    let (ledger, _) = Ledger::open_with_key(ledger_location(data.path()), &key).await.unwrap();
    let site_id = ledger.site_by_key(&site).await.unwrap().unwrap().id;
    let user = ledger.user_id(site_id, "grace").await.unwrap();
    let rows = ledger.user_shares(user).await.unwrap();
    for share in &acked {
        assert!(rows.contains(share), "acknowledged share {share:?} lost");
    }
    assert!(rows.len() <= acked.len() + 1, "{} rows for {} acks + 1 in flight", rows.len(), acked.len());
    let logged: u128 = rows.iter().map(|(_, _, work)| work).sum();

    // The restarted broker reports exactly the logged work as progress, and an old share replayed
    // against it credits nothing.
    let (mut again, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", second.address)).await.unwrap();
    send(&mut again, &hello(&site, &secret, "grace", Some("demo-article"))).await;
    let ServerMessage::Welcome(welcome) = recv(&mut again).await else { panic!("expected welcome") };
    assert_eq!(welcome.progress[0].done.0, logged);
    assert!(matches!(recv(&mut again).await, ServerMessage::Job(_)));
    let (job_id, nonce, _) = &acked[0];
    send(&mut again, &json!({"type": "submit", "job": job_id, "nonce": protocol::format_nonce(*nonce)}))
        .await;
    assert!(matches!(recv(&mut again).await, ServerMessage::Rejected { code: ErrorCode::UnknownJob, .. }));
    assert_eq!(ledger.user_shares(user).await.unwrap().len(), rows.len());
}

#[tokio::test]
async fn the_economics_api_refuses_bad_requests_with_their_codes_and_changes_nothing() {
    let broker = TestBroker::start().await;
    let token = broker.ledger.add_admin_token("test").await.unwrap();
    let (status, partner) = broker.admin("POST", "/partners", &token, Some(json!({"name": "Partner"}))).await;
    assert_eq!(status, 201);
    let key = partner["key"].as_str().unwrap().to_owned();
    let dashboard_key = partner["dashboard_key"].as_str().unwrap().to_owned();
    // Sign-in is by key: the partner's key is not an admin token, a site secret is not a partner key.
    let (status, _) = broker.admin("GET", "/partners", &dashboard_key, None).await;
    assert_eq!(status, 401);
    let now = minepass_broker::store::now_ms();
    let period =
        json!({"name": "p1", "from": (now - 1000).to_string(), "to": (now + 1000).to_string(), "sats": 1000});
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        ("POST", "/partners".into(), json!({"name": ""}), 400, "bad_name"),
        ("PATCH", format!("/partners/{key}"), json!({"commission_bps": 10_001}), 400, "bad_commission"),
        ("PATCH", "/partners/partner_nope".into(), json!({"commission_bps": 10}), 404, "not_found"),
        ("PUT", "/commission".into(), json!({"default_bps": 20_000}), 400, "bad_commission"),
        (
            "PUT",
            "/economics".into(),
            json!({"block_reward_sats": 0, "network_difficulty": "1"}),
            400,
            "bad_economics",
        ),
        ("PUT", "/sites/site_nope/partner".into(), json!({"partner": key}), 404, "not_found"),
        (
            "PUT",
            format!("/sites/{}/partner", broker.site_key),
            json!({"partner": "partner_nope"}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/periods".into(),
            json!({"name": "bad name", "from": "1", "to": "2", "sats": 1}),
            400,
            "bad_period_name",
        ),
        (
            "POST",
            "/periods".into(),
            json!({"name": "p0", "from": "2026-11-02", "to": "2026-11-01", "sats": 1}),
            400,
            "bad_time",
        ),
        (
            "POST",
            "/periods".into(),
            json!({"name": "p0", "from": "soon", "to": "2026-11-01", "sats": 1}),
            400,
            "bad_time",
        ),
        ("POST", "/periods".into(), json!({"name": "p0", "from": "1", "to": "2"}), 400, "economics_not_set"),
        (
            "POST",
            "/periods".into(),
            json!({"name": "p0", "from": "1", "to": "2", "sats": u64::MAX}),
            400,
            "bad_sats",
        ),
        ("POST", "/periods/p9/settle".into(), json!({"threshold_sats": 0}), 404, "not_found"),
        ("POST", "/payouts/99/paid".into(), json!({}), 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = broker.admin(method, &path, &token, Some(body.clone())).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{method} {path} {body}");
    }
    let (_, periods) = broker.admin("GET", "/periods", &token, None).await;
    assert_eq!(periods["periods"], json!([]), "no refused request created a period");
    let (_, partners) = broker.admin("GET", "/partners", &token, None).await;
    assert_eq!(partners["partners"][0]["commission_bps"], Value::Null);
    assert_eq!(partners["default_commission_bps"], 3000);

    // A period settles once; a second period of the same name is refused.
    assert_eq!(broker.admin("POST", "/periods", &token, Some(period.clone())).await.0, 201);
    let (status, again) = broker.admin("POST", "/periods", &token, Some(period)).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("period_exists")));
    let settle = json!({"threshold_sats": 0});
    assert_eq!(broker.admin("POST", "/periods/p1/settle", &token, Some(settle.clone())).await.0, 200);
    let (status, again) = broker.admin("POST", "/periods/p1/settle", &token, Some(settle)).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("already_settled")));
    let (_, check) = broker.admin("GET", "/ledger/check", &token, None).await;
    assert_eq!(check["ok"], true, "{check}");

    // The partner dashboard takes only the partner's key; the consent count takes only known sites.
    let dashboard = |key: String| {
        let url = format!("http://{}/api/v1/partner/dashboard", broker.address);
        async move { reqwest::Client::new().get(url).bearer_auth(key).send().await.unwrap() }
    };
    assert_eq!(dashboard(token.clone()).await.status(), 401);
    let answer: Value = dashboard(dashboard_key).await.json().await.unwrap();
    assert_eq!(answer["partner"]["name"], "Partner");
    assert_eq!(answer["series"].as_array().unwrap().len(), 96, "a day in quarter hours");
    let consent = |body: &'static str| {
        let url = format!("http://{}/api/v1/consent", broker.address);
        async move { reqwest::Client::new().post(url).body(body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(consent("nope").await, 400);
    assert_eq!(consent(r#"{"site": "site_nope", "given": true, "id": "c-12345678"}"#).await, 404);
    assert_eq!(consent(r#"{"site": "site_nope", "given": true}"#).await, 400, "an answer needs its id");
}

/// (answers, yes) counted for every site in the last day.
async fn consent_counts(broker: &TestBroker) -> (u64, u64) {
    broker.ledger.consent_counts(None, minepass_broker::store::now_ms() - 86_400_000).await.unwrap()
}

/// `POST /api/v1/consent` from the source address `from`: (status, body).
async fn post_consent(broker: &TestBroker, from: [u8; 4], body: Value) -> (u16, Value) {
    let client = reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap();
    let url = format!("http://{}/api/v1/consent", broker.address);
    let response = client.post(url).body(body.to_string()).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn three_thousand_consent_posts_from_one_client_move_the_count_by_at_most_five() {
    let broker = TestBroker::start().await;
    let answer = |id: String| json!({"site": broker.site_key, "given": true, "id": id});
    // The same answer id counts once.
    assert_eq!(post_consent(&broker, [127, 0, 0, 2], answer("c-00000001".into())).await.1["counted"], true);
    assert_eq!(post_consent(&broker, [127, 0, 0, 2], answer("c-00000001".into())).await.1["counted"], false);
    assert_eq!(consent_counts(&broker).await, (1, 1));

    // The attack from the issue: one client, 3,000 answers with fresh ids, as fast as it can.
    let posts = futures_util::stream::iter(0..3000)
        .map(|i| post_consent(&broker, [127, 0, 0, 3], answer(format!("c-flood-{i:05}"))))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let limited =
        posts.iter().filter(|(status, body)| *status == 429 && body["error"] == "rate_limited").count();
    let counted = posts.iter().filter(|(_, body)| body["counted"] == true).count();
    assert!(limited >= 2900, "{limited} of 3000 posts were rate-limited");
    assert_eq!(counted, minepass_broker::store::CONSENT_ANSWERS_PER_VISITOR as usize);
    assert_eq!(
        consent_counts(&broker).await,
        (1 + u64::from(minepass_broker::store::CONSENT_ANSWERS_PER_VISITOR), 6)
    );
    // Another visitor (address) still counts, and nothing stored names an address.
    assert_eq!(post_consent(&broker, [127, 0, 0, 4], answer("c-00000002".into())).await.1["counted"], true);
    let stored = raw_strings(&broker.location, "SELECT visitor FROM consent_answers").await;
    assert!(stored.iter().all(|v| v.len() == 32 && !v.contains("127.0.0")), "{stored:?}");
}

#[tokio::test]
async fn verified_work_becomes_credits_the_publisher_spends_on_offers_for_a_grant_token() {
    let broker = TestBroker::start().await;
    let admin = broker.ledger.add_admin_token("test").await.unwrap();
    let (mut socket, job) = open_session(&broker, "carol").await;
    let mut position = 0;
    let mut credits = 0u128;
    for _ in 0..4 {
        let (found, next) = mine_from(&job, position);
        position = next;
        send(&mut socket, &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(found)}))
            .await;
        let ServerMessage::Accepted { credits: after, work, .. } = recv(&mut socket).await else {
            panic!("expected accepted")
        };
        assert_eq!(after.0, credits + work.0, "every verified share adds its work to the credits");
        credits = after.0;
        let _progress = recv(&mut socket).await;
    }
    // The operator sets the site's offers; bad ones are refused.
    let offer_path = format!("/sites/{}/offers/week", broker.site_key);
    let offer = |body: Value| broker.admin("PUT", &offer_path, &admin, Some(body));
    for (body, code) in [
        (json!({"title": "A week", "price": "0", "kind": "subscription", "days": 7}), "bad_price"),
        (json!({"title": "A week", "price": "10", "kind": "subscription", "days": 0}), "bad_amount"),
        (json!({"title": "Article", "price": "10", "kind": "content", "content": "nope"}), "unknown_content"),
        (json!({"title": "A week", "price": "10", "kind": "lifetime"}), "bad_request"),
    ] {
        let (status, answer) = offer(body.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some(code)), "{body}");
    }
    let price = credits / 2 + 1;
    let (status, _) =
        offer(json!({"title": "A week", "price": price.to_string(), "kind": "subscription", "days": 7}))
            .await;
    assert_eq!(status, 200);

    let publisher = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = reqwest::Client::new()
            .request(method, format!("http://{}/api/v1/users/carol{path}", broker.address))
            .bearer_auth(&broker.site_secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, balance) = publisher(reqwest::Method::GET, "/credits", None).await;
    assert_eq!((status, balance["credits"].as_str()), (200, Some(credits.to_string().as_str())));
    assert_eq!(balance["offers"][0]["days"], 7);
    let (status, bought) = publisher(reqwest::Method::POST, "/spend", Some(json!({"offer": "week"}))).await;
    assert_eq!(status, 201, "{bought}");
    assert_eq!(bought["credits"], (credits - price).to_string());
    let (status, refused) = publisher(reqwest::Method::POST, "/spend", Some(json!({"offer": "week"}))).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("insufficient_credits")),
        "the second week costs more than is left"
    );
    let (status, _) = publisher(reqwest::Method::POST, "/spend", Some(json!({"offer": "month"}))).await;
    assert_eq!(status, 404);
    let (_, balance) = publisher(reqwest::Method::GET, "/credits", None).await;
    assert_eq!(balance["spent"], price.to_string(), "refused spends changed nothing");

    // The grant is a token the publisher verifies once, like an unlock.
    let (status, verified) =
        broker.verify_token(&broker.site_secret, bought["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        verified["claims"]["grant"],
        json!({"offer": "week", "title": "A week", "price": price.to_string(), "kind": "subscription", "days": 7})
    );
    assert_eq!(verified["claims"]["sub"], "carol");
    let report = broker.ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// `GET /api/v1/estimate` with `query`: (HTTP status, JSON body).
async fn estimate(broker: &TestBroker, query: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}/api/v1/estimate?{query}", broker.address)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn finished_sessions_give_the_next_visitor_of_their_class_an_unlock_estimate() {
    let broker = TestBroker::start().await;
    let query =
        |engine: &str| format!("site={}&content=article&engine={engine}&cores=4&simd=true", broker.site_key);
    let (status, body) = estimate(&broker, &query("webkit")).await;
    assert_eq!((status, &body["estimate"]), (200, &Value::Null), "no samples yet: {body}");
    assert_eq!(body["class"], "webkit/3-4/simd");

    // Two WebKit sessions mine 10 shares each, 20 ms apart, and end.
    for user in ["visitor-1", "visitor-2"] {
        let mut socket = broker.connect().await;
        let mut hello = hello(&broker.site_key, &broker.site_secret, user, None);
        hello["client"] = json!({"threads": 2, "simd": true, "engine": "webkit", "cores": 4});
        send(&mut socket, &hello).await;
        let ServerMessage::Welcome(_) = recv(&mut socket).await else { panic!("expected welcome") };
        let ServerMessage::Job(job) = recv(&mut socket).await else { panic!("expected job") };
        let mut position = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (found, next) = mine_from(&job, position);
            position = next;
            send(
                &mut socket,
                &json!({"type": "submit", "job": job.id, "nonce": protocol::format_nonce(found)}),
            )
            .await;
            let ServerMessage::Accepted { .. } = recv(&mut socket).await else { panic!("expected accepted") };
        }
        socket.close(None).await.unwrap();
    }

    // Filed when each connection ended; the dialog of the next WebKit visitor gets a range.
    let body = loop {
        let (_, body) = estimate(&broker, &query("webkit")).await;
        if !body["estimate"].is_null() {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let e = &body["estimate"];
    assert_eq!(e["samples"], 2);
    let (low, high) = (e["low_s"].as_u64().unwrap(), e["high_s"].as_u64().unwrap());
    // 2^16 hashes at a rate of about 2^12 per 20 ms (200 kH/s) take about 0.3 s, rounded up.
    assert!(low >= 1 && low <= high && high <= 2, "{e}");
    // Another class has no samples; the rates are a device class's, not a visitor's.
    assert_eq!(estimate(&broker, &query("gecko")).await.1["estimate"], Value::Null);

    // Bad input: a clear code and nothing else.
    assert_eq!(estimate(&broker, "site=x").await.0, 400);
    assert_eq!(estimate(&broker, "site=x").await.1["error"], "bad_query");
    assert_eq!(estimate(&broker, &format!("site={}&content=nope", broker.site_key)).await.0, 404);
    assert_eq!(estimate(&broker, "site=nope&content=article").await.0, 404);
}
