//! The one error type of the HTTP APIs and the one success shape: every answer is JSON with
//! `"ok"`; a refusal is a status plus a stable `error` code (docs/PROTOCOL.md lists them), mapped
//! here once from the layers' error types; a refused request changes nothing.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::tokens::TokenError;

/// A successful answer: `{"ok": true, …the fields of T}`, with `status` (200 unless said).
pub struct Answer<T> {
    pub status: StatusCode,
    pub body: T,
}

impl<T> Answer<T> {
    pub fn ok(body: T) -> Answer<T> {
        Answer { status: StatusCode::OK, body }
    }

    pub fn created(body: T) -> Answer<T> {
        Answer { status: StatusCode::CREATED, body }
    }
}

#[derive(Serialize)]
struct Envelope<T> {
    ok: bool,
    #[serde(flatten)]
    body: T,
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        (self.status, Json(Envelope { ok: true, body: self.body })).into_response()
    }
}

/// Errors of the JSON APIs: the client learns a stable code, the log gets the detail.
pub enum ApiError {
    Unauthorized,
    /// The body is not the expected JSON, or a field is out of its range (the code names which).
    BadRequest(&'static str),
    NotFound,
    /// Too many requests from one address; retry after the given seconds.
    RateLimited,
    /// A spend over the user's balance (nothing was spent): how many credits they have.
    InsufficientCredits(u128),
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
            ApiError::InsufficientCredits(credits) => {
                let body =
                    json!({ "ok": false, "error": "insufficient_credits", "credits": credits.to_string() });
                return (StatusCode::CONFLICT, Json(body)).into_response();
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

/// The store's refusals, each with its documented code.
impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError;
        match error {
            StoreError::NotFound(_) => ApiError::NotFound,
            StoreError::Invalid(code) | StoreError::Conflict(code) => ApiError::BadRequest(code),
            StoreError::Internal(error) => ApiError::Internal(error),
        }
    }
}

impl From<crate::store::rewards::InsufficientCredits> for ApiError {
    fn from(refused: crate::store::rewards::InsufficientCredits) -> ApiError {
        ApiError::InsufficientCredits(refused.credits)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        ApiError::Internal(error)
    }
}

/// A JSON body, or `bad_request` (axum's own rejection would answer in plain text).
pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|_| ApiError::BadRequest("bad_request"))
}
