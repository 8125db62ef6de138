//! Who is asking: extractors for the three credentials of the HTTP APIs, each a `Bearer` token
//! looked up by its hash. An admin route cannot exist without its check: the admin router is nested
//! under [`require_admin`] as a layer (`http/mod.rs`), so no admin handler sees an unauthorised
//! request; publishers' and partners' handlers take [`Publisher`] or [`PartnerKey`] as arguments.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::books::Partner;
use crate::session::Broker;
use crate::store::Site;

/// The credential of `Authorization: Bearer <credential>`; the scheme's name is case-insensitive
/// (RFC 9110 §11.1), so `bearer` and `BEARER` work too.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim_start())
        .filter(|credential| !credential.is_empty())
        .ok_or(ApiError::Unauthorized)
}

/// The admin router's layer: `Authorization: Bearer <admin token>` (`minepass-broker admin-token
/// add`), or `unauthorized` before any handler runs.
pub async fn require_admin(State(broker): State<Arc<Broker>>, request: Request, next: Next) -> Response {
    let admitted = match bearer(request.headers()) {
        Ok(token) => broker.ledger.is_admin_token(token).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match admitted {
        Ok(true) => next.run(request).await,
        Ok(false) => ApiError::Unauthorized.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The site whose secret the request carries (a publisher's server).
pub struct Publisher(pub Site);

impl FromRequestParts<Arc<Broker>> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, broker: &Arc<Broker>) -> Result<Self, ApiError> {
        let secret = bearer(&parts.headers)?;
        broker.ledger.site_by_secret(secret).await?.map(Publisher).ok_or(ApiError::Unauthorized)
    }
}

/// The partner whose dashboard key the request carries.
pub struct PartnerKey(pub Partner);

impl FromRequestParts<Arc<Broker>> for PartnerKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, broker: &Arc<Broker>) -> Result<Self, ApiError> {
        let secret = bearer(&parts.headers)?;
        broker.ledger.partner_by_secret(secret).await?.map(PartnerKey).ok_or(ApiError::Unauthorized)
    }
}
