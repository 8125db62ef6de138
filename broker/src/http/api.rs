//! The JSON APIs: token verification for publishers (site secret) and site/content administration
//! for the operator (admin token). Every error is a status plus a stable `error` code; a refused
//! request changes nothing.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use minepass::protocol::Work;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::session::Broker;
use crate::store::{CONSENT_MAX_HOURS, Content, Site, is_valid_content_key, is_valid_label};
use crate::tokens::TokenError;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/api/v1/tokens/verify", post(verify_token))
        .route("/api/v1/admin/sites", get(list_sites).post(add_site))
        .route("/api/v1/admin/sites/{site}", patch(update_site))
        .route("/api/v1/admin/sites/{site}/content/{content}", put(put_content))
        .route("/api/v1/admin/sites/{site}/content/{content}/sealed", put(seal_content))
        .route("/api/v1/sealed/{site}/{content}", get(sealed_content).layer(super::public_cors()))
        .merge(super::economics::routes())
        .merge(super::rewards::routes())
}

/// Errors of the JSON APIs: the client learns a stable code, the log gets the detail.
pub(super) enum ApiError {
    Unauthorized,
    /// The body is not the expected JSON, or a field is out of its range (the code names which).
    BadRequest(&'static str),
    NotFound,
    /// Too many requests from one address; retry after the given seconds.
    RateLimited,
    Token(TokenError),
    Internal(anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest(code) => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::RateLimited => {
                let body = Json(json!({ "ok": false, "error": "rate_limited" }));
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "60")], body).into_response();
            }
            // A well-formed request about a bad token is answered 200 with ok: false (as siteverify APIs do).
            ApiError::Token(error) => (StatusCode::OK, error.code()),
            ApiError::Internal(error) => {
                tracing::error!("API request failed: {error:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        (status, Json(json!({ "ok": false, "error": code }))).into_response()
    }
}

/// The books' refusals, each with its documented code.
impl From<crate::books::BooksError> for ApiError {
    fn from(error: crate::books::BooksError) -> ApiError {
        use crate::books::BooksError;
        match error {
            BooksError::NotFound => ApiError::NotFound,
            BooksError::AlreadySettled => ApiError::BadRequest("already_settled"),
            BooksError::AlreadyPaid => ApiError::BadRequest("already_paid"),
            BooksError::AlreadyReversed => ApiError::BadRequest("already_reversed"),
            BooksError::NotReversible(_) => ApiError::BadRequest("not_reversible"),
            BooksError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        ApiError::Internal(error)
    }
}

/// The credential of `Authorization: Bearer <credential>`; the scheme's name is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work too.
pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim_start())
        .filter(|credential| !credential.is_empty())
        .ok_or(ApiError::Unauthorized)
}

/// A JSON body, or `bad_request` (axum's own rejection would answer in plain text).
pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|_| ApiError::BadRequest("bad_request"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

/// `POST /api/v1/tokens/verify` with `Authorization: Bearer <site secret>` and `{"token": "…"}`:
/// checks the token for this site and consumes it, so a second verify of the same token fails.
async fn verify_token(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let site = broker.ledger.site_by_secret(bearer(&headers)?).await?.ok_or(ApiError::Unauthorized)?;
    let request = body(request)?;
    let claims = match broker.tokens.verify(&request.token, &site.key) {
        // Signed by a key another broker of the fleet rotated in since our last read: reread once.
        Err(TokenError::UnknownKey) if broker.tokens.refresh(&broker.ledger, false).await? => {
            broker.tokens.verify(&request.token, &site.key)
        }
        verified => verified,
    }
    .map_err(ApiError::Token)?;
    if !broker.ledger.consume_token(&claims.jti, site.id).await? {
        return Err(ApiError::Token(TokenError::AlreadyUsed));
    }
    Ok(Json(json!({ "ok": true, "claims": claims })).into_response())
}

/// Admin requests carry `Authorization: Bearer <admin token>` (`minepass-broker admin-token add`).
pub(super) async fn authorize_admin(broker: &Broker, headers: &HeaderMap) -> Result<(), ApiError> {
    if broker.ledger.is_admin_token(bearer(headers)?).await? { Ok(()) } else { Err(ApiError::Unauthorized) }
}

#[derive(Serialize)]
struct SiteView {
    key: String,
    name: String,
    enabled: bool,
    content: Vec<ContentView>,
}

#[derive(Serialize)]
struct ContentView {
    id: String,
    title: String,
    /// Expected hashes that unlock the item, as a decimal string (a u128 does not fit a JSON number).
    required_work: Work,
}

impl From<Content> for ContentView {
    fn from(content: Content) -> ContentView {
        ContentView { id: content.key, title: content.title, required_work: Work(content.required) }
    }
}

async fn site_view(broker: &Broker, site: Site) -> Result<SiteView, ApiError> {
    let content = broker.ledger.content(site.id).await?.into_iter().map(ContentView::from).collect();
    Ok(SiteView { key: site.key, name: site.name, enabled: site.enabled, content })
}

async fn existing_site(broker: &Broker, key: &str) -> Result<Site, ApiError> {
    broker.ledger.site_by_key(key).await?.ok_or(ApiError::NotFound)
}

/// `GET /api/v1/admin/sites`: every site with its content items.
async fn list_sites(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let mut sites = Vec::new();
    for site in broker.ledger.sites().await? {
        sites.push(site_view(&broker, site).await?);
    }
    Ok(Json(json!({ "ok": true, "sites": sites })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSiteRequest {
    name: String,
}

/// `POST /api/v1/admin/sites` `{"name": …}`: creates a site; the answer holds its secret, the only
/// time it is shown (the ledger keeps its hash).
async fn add_site(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<NewSiteRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    if !is_valid_label(&request.name) {
        return Err(ApiError::BadRequest("bad_name"));
    }
    let site = broker.ledger.add_site(&request.name).await?;
    tracing::info!(site = %site.key, name = %request.name, "site added through the admin API");
    let answer = json!({ "ok": true, "key": site.key, "secret": site.secret });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSiteRequest {
    enabled: Option<bool>,
    /// The longest consent lifetime the site's hellos may present, in hours.
    consent_max_hours: Option<u32>,
}

/// `PATCH /api/v1/admin/sites/{site}` `{"enabled": false}`: a disabled site gets no new sessions.
async fn update_site(
    State(broker): State<Arc<Broker>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    request: Result<Json<UpdateSiteRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    existing_site(&broker, &key).await?;
    if request.consent_max_hours.is_some_and(|hours| !CONSENT_MAX_HOURS.contains(&hours)) {
        return Err(ApiError::BadRequest("bad_consent_max_hours"));
    }
    if let Some(enabled) = request.enabled {
        broker.ledger.set_site_enabled(&key, enabled).await?;
    }
    if let Some(hours) = request.consent_max_hours {
        broker.ledger.set_consent_max_hours(&key, hours).await?;
    }
    let site = site_view(&broker, existing_site(&broker, &key).await?).await?;
    Ok(Json(json!({ "ok": true, "site": site })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutContentRequest {
    title: String,
    required_work: Work,
}

/// `PUT /api/v1/admin/sites/{site}/content/{content}` `{"title": …, "required_work": "268435456"}`:
/// creates the item or changes its title and quota.
async fn put_content(
    State(broker): State<Arc<Broker>>,
    Path((site_key, content_key)): Path<(String, String)>,
    headers: HeaderMap,
    request: Result<Json<PutContentRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    existing_site(&broker, &site_key).await?;
    if !is_valid_content_key(&content_key) {
        return Err(ApiError::BadRequest("bad_content_id"));
    }
    if !is_valid_label(&request.title) {
        return Err(ApiError::BadRequest("bad_title"));
    }
    if request.required_work.0 == 0 {
        return Err(ApiError::BadRequest("bad_required_work"));
    }
    broker.ledger.put_content(&site_key, &content_key, &request.title, request.required_work.0).await?;
    let content = ContentView { id: content_key, title: request.title, required_work: request.required_work };
    Ok(Json(json!({ "ok": true, "content": content })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealRequest {
    /// The gated HTML.
    html: String,
    /// Stop opening earlier versions at once (their keys leaked, say).
    #[serde(default)]
    retire_previous: bool,
}

/// `PUT /api/v1/admin/sites/{site}/content/{content}/sealed` `{"html": …, "retire_previous"?}`:
/// encrypts the item's gated HTML under a new key version; the answer holds the sealed string for
/// pages that embed it (`<minepass-gate sealed="…">`).
async fn seal_content(
    State(broker): State<Arc<Broker>>,
    Path((site_key, content_key)): Path<(String, String)>,
    headers: HeaderMap,
    request: Result<Json<SealRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    let site = existing_site(&broker, &site_key).await?;
    if !broker.ledger.content(site.id).await?.iter().any(|c| c.key == content_key) {
        return Err(ApiError::NotFound);
    }
    if request.html.is_empty() || request.html.len() > crate::store::seals::MAX_SEALED_BYTES {
        return Err(ApiError::BadRequest("bad_html"));
    }
    let sealed =
        broker.ledger.seal_content(&site_key, &content_key, &request.html, request.retire_previous).await?;
    tracing::info!(site = %site_key, content = %content_key, version = sealed.version, "content sealed");
    Ok(Json(json!({ "ok": true, "content": content_key, "version": sealed.version, "sealed": sealed.text }))
        .into_response())
}

/// `GET /api/v1/sealed/{site}/{content}`: the newest sealed version of an item, ciphertext only
/// (its key comes in the `unlock`), readable from any origin; `not_found` if it is not sealed.
async fn sealed_content(
    State(broker): State<Arc<Broker>>,
    Path((site_key, content_key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sealed = broker.ledger.current_seal(&site_key, &content_key).await?.ok_or(ApiError::NotFound)?;
    let body =
        json!({ "ok": true, "content": content_key, "version": sealed.version, "sealed": sealed.text });
    // Short-lived in caches: a re-seal shows within a minute.
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(body)).into_response())
}
