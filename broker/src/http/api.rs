//! The JSON APIs: token verification for publishers (site secret), site/content administration
//! for the operator (admin token, checked by the admin router's layer), the public sealed
//! ciphertext. Errors are [`ApiError`]s, answers typed structs in an [`Answer`].

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use minepass::protocol::Work;
use serde::{Deserialize, Serialize};

use super::auth::Publisher;
use super::error::{Answer, ApiError, body};
use crate::session::Broker;
use crate::store::{CONSENT_MAX_HOURS, Content, Site};
use crate::tokens::{TokenError, UnlockClaims};

#[derive(Serialize)]
struct VerifiedAnswer {
    claims: UnlockClaims,
}

#[derive(Serialize)]
struct SitesAnswer {
    sites: Vec<SiteView>,
}

#[derive(Serialize)]
struct SiteAnswer {
    site: SiteView,
}

#[derive(Serialize)]
struct NewSiteAnswer {
    key: String,
    /// Shown once: the ledger keeps its hash (and a copy sealed under the KEK).
    secret: String,
}

#[derive(Serialize)]
struct ContentAnswer {
    content: ContentView,
}

#[derive(Serialize)]
struct SealedAnswer {
    content: String,
    version: u32,
    sealed: String,
}

/// Routes for publishers' servers and the public.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/api/v1/tokens/verify", post(verify_token))
        .route("/api/v1/sealed/{site}/{content}", get(sealed_content).layer(super::public_cors()))
        .route("/api/v1/estimate", get(unlock_estimate).layer(super::public_cors()))
}

/// Routes under `/api/v1/admin` (nested behind the admin check).
pub fn admin_routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/sites", get(list_sites).post(add_site))
        .route("/sites/{site}", patch(update_site))
        .route("/sites/{site}/content/{content}", put(put_content))
        .route("/sites/{site}/content/{content}/sealed", put(seal_content))
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
    Publisher(site): Publisher,
    request: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Answer<VerifiedAnswer>, ApiError> {
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
    Ok(Answer::ok(VerifiedAnswer { claims }))
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
async fn list_sites(State(broker): State<Arc<Broker>>) -> Result<Answer<SitesAnswer>, ApiError> {
    let mut sites = Vec::new();
    for site in broker.ledger.sites().await? {
        sites.push(site_view(&broker, site).await?);
    }
    Ok(Answer::ok(SitesAnswer { sites }))
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
    request: Result<Json<NewSiteRequest>, JsonRejection>,
) -> Result<Answer<NewSiteAnswer>, ApiError> {
    let request = body(request)?;
    let site = broker.ledger.add_site(&request.name).await?;
    tracing::info!(site = %site.key, name = %request.name, "site added through the admin API");
    Ok(Answer::created(NewSiteAnswer { key: site.key, secret: site.secret }))
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
    request: Result<Json<UpdateSiteRequest>, JsonRejection>,
) -> Result<Answer<SiteAnswer>, ApiError> {
    let request = body(request)?;
    // Checked before either change, so that a refused request changes nothing.
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
    Ok(Answer::ok(SiteAnswer { site }))
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
    request: Result<Json<PutContentRequest>, JsonRejection>,
) -> Result<Answer<ContentAnswer>, ApiError> {
    let request = body(request)?;
    broker.ledger.put_content(&site_key, &content_key, &request.title, request.required_work.0).await?;
    let content = ContentView { id: content_key, title: request.title, required_work: request.required_work };
    Ok(Answer::ok(ContentAnswer { content }))
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
    request: Result<Json<SealRequest>, JsonRejection>,
) -> Result<Answer<SealedAnswer>, ApiError> {
    let request = body(request)?;
    let sealed =
        broker.ledger.seal_content(&site_key, &content_key, &request.html, request.retire_previous).await?;
    tracing::info!(site = %site_key, content = %content_key, version = sealed.version, "content sealed");
    Ok(Answer::ok(SealedAnswer { content: content_key, version: sealed.version, sealed: sealed.text }))
}

/// `GET /api/v1/sealed/{site}/{content}`: the newest sealed version of an item, ciphertext only
/// (its key comes in the `unlock`), readable from any origin; `not_found` if it is not sealed.
async fn sealed_content(
    State(broker): State<Arc<Broker>>,
    Path((site_key, content_key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sealed = broker.ledger.current_seal(&site_key, &content_key).await?.ok_or(ApiError::NotFound)?;
    let answer =
        Answer::ok(SealedAnswer { content: content_key, version: sealed.version, sealed: sealed.text });
    // Short-lived in caches: a re-seal shows within a minute.
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], answer).into_response())
}

#[derive(Deserialize)]
struct EstimateQuery {
    site: String,
    content: String,
    engine: Option<String>,
    cores: Option<u32>,
    #[serde(default)]
    simd: bool,
}

#[derive(Serialize)]
struct EstimateAnswer {
    /// The device class the samples are of.
    class: String,
    /// `null` while the class has too few samples.
    estimate: Option<crate::estimate::Estimate>,
}

/// `GET /api/v1/estimate?site=…&content=…&engine=…&cores=…&simd=…`: how long unlocking `content`
/// takes on a device of this class, from the rates measured of recent sessions of the class. Public
/// (the consent dialog asks it before any hashing) and cacheable for a minute.
async fn unlock_estimate(
    State(broker): State<Arc<Broker>>,
    query: Result<Query<EstimateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::BadRequest("bad_query"))?;
    let site = broker.ledger.site_by_key(&query.site).await?.ok_or(ApiError::NotFound)?;
    let content = broker.ledger.content(site.id).await?;
    let content = content.iter().find(|c| c.key == query.content).ok_or(ApiError::NotFound)?;
    let class = crate::estimate::class_key(query.engine.as_deref(), query.cores, query.simd);
    let rates = broker.ledger.device_rates(&class).await?;
    let estimate = crate::estimate::estimate(&rates, content.required);
    let answer = Answer::ok(EstimateAnswer { class, estimate });
    Ok(([(header::CACHE_CONTROL, "public, max-age=60")], answer).into_response())
}
