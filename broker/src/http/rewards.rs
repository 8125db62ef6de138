//! The consumer-rewards APIs. The operator (admin router) sets a site's offers; the publisher's
//! server (site secret) reads a user's credits and spends them on an offer, receiving a signed
//! grant token (the same JWT form as unlock tokens, verifiable once through the verify API).
//! Spending is the publisher's call, not the browser's: the publisher knows who its user is.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use minepass::protocol::Work;
use serde::{Deserialize, Serialize};

use super::auth::Publisher;
use super::error::{Answer, ApiError, body};
use crate::session::Broker;
use crate::store::Site;
use crate::store::rewards::{Offer, OfferKind};
use crate::tokens::{Grant, UnlockClaims};

/// Routes for publishers' servers.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/api/v1/users/{user}/credits", get(credits))
        .route("/api/v1/users/{user}/spend", post(spend))
}

/// Routes under `/api/v1/admin` (nested behind the admin check).
pub fn admin_routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/sites/{site}/offers", get(list_offers))
        .route("/sites/{site}/offers/{offer}", put(put_offer))
}

#[derive(Serialize)]
struct OffersAnswer {
    offers: Vec<Offer>,
}

#[derive(Serialize)]
struct CreditsAnswer {
    user: String,
    credits: Work,
    earned: Work,
    spent: Work,
    offers: Vec<Offer>,
}

#[derive(Serialize)]
struct SpentAnswer {
    /// The grant token: what was bought, signed, verifiable once.
    token: String,
    /// Credits left.
    credits: Work,
    claims: UnlockClaims,
}

async fn existing_site(broker: &Broker, key: &str) -> Result<Site, ApiError> {
    broker.ledger.site_by_key(key).await?.ok_or(ApiError::NotFound)
}

async fn list_offers(
    State(broker): State<Arc<Broker>>,
    Path(site): Path<String>,
) -> Result<Answer<OffersAnswer>, ApiError> {
    let site = existing_site(&broker, &site).await?;
    Ok(Answer::ok(OffersAnswer { offers: broker.ledger.offers(site.id).await? }))
}

// No `deny_unknown_fields`: serde cannot combine it with `flatten`; the kind's own fields are checked.
#[derive(Deserialize)]
struct PutOfferRequest {
    title: String,
    /// Credits (expected hashes), a decimal string.
    price: Work,
    #[serde(flatten)]
    kind: OfferKind,
}

/// `PUT /api/v1/admin/sites/{site}/offers/{offer}` `{"title", "price", "kind": "content", "content"}`
/// (or `"kind": "subscription", "days"` or `"kind": "tokens", "tokens"`).
async fn put_offer(
    State(broker): State<Arc<Broker>>,
    Path((site, offer)): Path<(String, String)>,
    request: Result<Json<PutOfferRequest>, JsonRejection>,
) -> Result<Answer<OffersAnswer>, ApiError> {
    let site = existing_site(&broker, &site).await?;
    let request = body(request)?;
    match &request.kind {
        OfferKind::Content { content } => {
            let items = broker.ledger.content(site.id).await?;
            if !items.iter().any(|c| &c.key == content) {
                return Err(ApiError::BadRequest("unknown_content"));
            }
        }
        OfferKind::Subscription { days } if *days == 0 || *days > 3660 => {
            return Err(ApiError::BadRequest("bad_amount"));
        }
        OfferKind::Tokens { tokens } if *tokens == 0 || i64::try_from(*tokens).is_err() => {
            return Err(ApiError::BadRequest("bad_amount"));
        }
        _ => {}
    }
    broker.ledger.put_offer(site.id, &offer, &request.title, request.price.0, &request.kind).await?;
    Ok(Answer::ok(OffersAnswer { offers: broker.ledger.offers(site.id).await? }))
}

/// `GET /api/v1/users/{user}/credits` (site secret): the user's credits and the site's offers.
async fn credits(
    State(broker): State<Arc<Broker>>,
    Path(user): Path<String>,
    Publisher(site): Publisher,
) -> Result<Answer<CreditsAnswer>, ApiError> {
    let (earned, spent) = broker
        .ledger
        .user_credits(site.id, &user)
        .await?
        .map_or((0, 0), |(_, earned, spent)| (earned, spent));
    Ok(Answer::ok(CreditsAnswer {
        user,
        credits: Work(earned.saturating_sub(spent)),
        earned: Work(earned),
        spent: Work(spent),
        offers: broker.ledger.offers(site.id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendRequest {
    offer: String,
}

/// `POST /api/v1/users/{user}/spend {"offer"}` (site secret): spends the offer's price and answers
/// with a grant token whose `grant` claim states what was bought; or `insufficient_credits` and
/// nothing spent.
async fn spend(
    State(broker): State<Arc<Broker>>,
    Path(user): Path<String>,
    Publisher(site): Publisher,
    request: Result<Json<SpendRequest>, JsonRejection>,
) -> Result<Answer<SpentAnswer>, ApiError> {
    let request = body(request)?;
    let offers = broker.ledger.offers(site.id).await?;
    let Some(offer) = offers.iter().find(|o| o.key == request.offer) else {
        return Err(ApiError::NotFound);
    };
    let grant = Grant {
        offer: offer.key.clone(),
        title: offer.title.clone(),
        price: offer.price.0.to_string(),
        kind: offer.kind.clone(),
    };
    let claims = broker.tokens.grant_claims(&user, &site.key, grant);
    let left = broker.ledger.spend(site.id, &user, offer, &claims.jti).await??;
    let token = broker.tokens.sign(&claims);
    tracing::info!(site = %site.key, user, offer = %request.offer, "credits spent");
    Ok(Answer::created(SpentAnswer { token, credits: Work(left), claims }))
}
