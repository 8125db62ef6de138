//! The partner-economics APIs: the operator's (admin token: partners, commission, periods,
//! settlement, payouts, ledger check, an overview per partner), the partner dashboard's (the
//! partner's dashboard key) and the SDK's anonymous consent-answer count. Handlers are thin: the
//! books are in [`crate::books`], the math in [`crate::books::settlement`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use minepass::protocol::Work;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, authorize_admin, bearer, body};
use crate::books::settlement;
use crate::books::{self, Partner, Source};
use crate::session::Broker;
use crate::store::ConsentCount;
use crate::store::now_ms;

pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/api/v1/admin/partners", get(list_partners).post(add_partner))
        .route("/api/v1/admin/partners/{partner}", patch(update_partner))
        .route("/api/v1/admin/commission", put(set_default_commission))
        .route("/api/v1/admin/economics", put(set_economics))
        .route("/api/v1/admin/sites/{site}/partner", put(assign_site))
        .route("/api/v1/admin/periods", get(list_periods).post(add_period))
        .route("/api/v1/admin/periods/{period}/settle", post(settle))
        .route("/api/v1/admin/payouts", get(list_payouts))
        .route("/api/v1/admin/payouts.csv", get(payouts_csv))
        .route("/api/v1/admin/payouts/{id}/paid", post(mark_paid))
        .route("/api/v1/admin/ledger/check", get(check))
        .route("/api/v1/admin/overview", get(overview))
        .route("/api/v1/partner/dashboard", get(partner_dashboard))
        .route("/api/v1/consent", post(consent_answer))
}

async fn existing_partner(broker: &Broker, key: &str) -> Result<Partner, ApiError> {
    broker.ledger.partner_by_key(key).await?.ok_or(ApiError::NotFound)
}

async fn list_partners(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let default = broker.ledger.default_commission().await?;
    Ok(Json(
        json!({ "ok": true, "default_commission_bps": default, "partners": broker.ledger.partners().await? }),
    )
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPartnerRequest {
    name: String,
}

/// `POST /api/v1/admin/partners {"name"}`: the answer holds the dashboard key, shown only here.
async fn add_partner(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<NewPartnerRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    if !crate::store::is_valid_label(&request.name) {
        return Err(ApiError::BadRequest("bad_name"));
    }
    let partner = broker.ledger.add_partner(&request.name).await?;
    let answer = json!({ "ok": true, "key": partner.key, "dashboard_key": partner.secret });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePartnerRequest {
    /// Basis points, or `null` for the global default.
    commission_bps: Option<u32>,
}

fn valid_bps(bps: u32) -> Result<u32, ApiError> {
    if u64::from(bps) <= settlement::BPS_DENOMINATOR {
        Ok(bps)
    } else {
        Err(ApiError::BadRequest("bad_commission"))
    }
}

async fn update_partner(
    State(broker): State<Arc<Broker>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    request: Result<Json<UpdatePartnerRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    let bps = request.commission_bps.map(valid_bps).transpose()?;
    existing_partner(&broker, &key).await?;
    broker.ledger.set_partner_commission(&key, bps).await?;
    Ok(Json(json!({ "ok": true, "partner": existing_partner(&broker, &key).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultCommissionRequest {
    default_bps: u32,
}

async fn set_default_commission(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<DefaultCommissionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let bps = valid_bps(body(request)?.default_bps)?;
    broker.ledger.set_default_commission(bps).await?;
    Ok(Json(json!({ "ok": true, "default_commission_bps": bps })).into_response())
}

/// The chain facts the PPS estimate and the dashboard's calculator start from.
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct EconomicsSettings {
    /// Satoshis per block (subsidy plus typical fees).
    block_reward_sats: u64,
    /// Network difficulty (bdiff), a decimal string: it outgrows JSON numbers' exact range.
    network_difficulty: Work,
}

async fn economics_settings(broker: &Broker) -> Result<Option<EconomicsSettings>, ApiError> {
    let text = broker.ledger.setting("economics").await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

async fn set_economics(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<EconomicsSettings>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let settings = body(request)?;
    if settings.network_difficulty.0 == 0 || settings.block_reward_sats == 0 {
        return Err(ApiError::BadRequest("bad_economics"));
    }
    let text = serde_json::to_string(&settings).map_err(anyhow::Error::from)?;
    broker.ledger.set_setting("economics", &text).await?;
    Ok(Json(json!({ "ok": true, "economics": settings })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignSiteRequest {
    partner: String,
}

async fn assign_site(
    State(broker): State<Arc<Broker>>,
    Path(site): Path<String>,
    headers: HeaderMap,
    request: Result<Json<AssignSiteRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    broker.ledger.site_by_key(&site).await?.ok_or(ApiError::NotFound)?;
    existing_partner(&broker, &request.partner).await?;
    broker.ledger.assign_site(&site, &request.partner).await?;
    Ok(Json(json!({ "ok": true, "site": site, "partner": request.partner })).into_response())
}

async fn list_periods(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    Ok(Json(json!({ "ok": true, "periods": broker.ledger.periods().await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPeriodRequest {
    name: String,
    /// `YYYY-MM-DD` (UTC) or Unix ms.
    from: String,
    to: String,
    /// What the pool paid; absent: the PPS estimate from pool-accepted work and the economics settings.
    sats: Option<u64>,
}

/// `POST /api/v1/admin/periods {"name", "from", "to", "sats"?}`.
async fn add_period(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    request: Result<Json<NewPeriodRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    if !books::is_valid_period_name(&request.name) {
        return Err(ApiError::BadRequest("bad_period_name"));
    }
    let (Ok(from), Ok(to)) = (books::parse_time(&request.from), books::parse_time(&request.to)) else {
        return Err(ApiError::BadRequest("bad_time"));
    };
    if from >= to {
        return Err(ApiError::BadRequest("bad_time"));
    }
    if broker.ledger.periods().await?.iter().any(|p| p.name == request.name) {
        return Err(ApiError::BadRequest("period_exists"));
    }
    let (sats, source) = match request.sats {
        Some(sats) if i64::try_from(sats).is_ok() => (sats, Source::Recorded),
        Some(_) => return Err(ApiError::BadRequest("bad_sats")),
        None => {
            let settings =
                economics_settings(&broker).await?.ok_or(ApiError::BadRequest("economics_not_set"))?;
            let work: u128 = broker.ledger.pool_work_by_partner(from, to).await?.iter().map(|(_, w)| w).sum();
            let sats =
                settlement::pps_estimate(work, settings.block_reward_sats, settings.network_difficulty.0);
            (sats.min(i64::MAX as u64), Source::Estimate)
        }
    };
    let period = broker.ledger.record_period(&request.name, from, to, sats, source).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ok": true, "period": period }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleRequest {
    threshold_sats: u64,
}

async fn settle(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Result<Json<SettleRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let request = body(request)?;
    // Whether it was settled already is decided inside the settling transaction, not here.
    let result = broker.ledger.settle_period(&name, request.threshold_sats).await?;
    let partners: Vec<_> = result
        .partners
        .iter()
        .map(|p| json!({"partner": p.partner, "gross": p.gross, "commission": p.commission, "net": p.net, "payout": p.payout, "carry": p.carry}))
        .collect();
    Ok(Json(json!({ "ok": true, "earnings": result.earnings, "commission": result.commission, "partners": partners }))
        .into_response())
}

#[derive(Deserialize)]
struct PayoutsQuery {
    #[serde(default)]
    all: bool,
}

async fn list_payouts(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    Query(query): Query<PayoutsQuery>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    Ok(Json(json!({ "ok": true, "payouts": broker.ledger.payouts(!query.all).await? })).into_response())
}

/// `GET /api/v1/admin/payouts.csv`: the payouts due, for a payment run.
async fn payouts_csv(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let csv = books::payouts_csv(&broker.ledger.payouts(true).await?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn mark_paid(
    State(broker): State<Arc<Broker>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    broker.ledger.mark_paid(id).await?;
    Ok(Json(json!({ "ok": true, "id": id })).into_response())
}

async fn check(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let report = broker.ledger.check().await?;
    Ok(Json(json!({
        "ok": report.problems.is_empty(),
        "entries": report.entries, "postings": report.postings,
        "shares": report.shares, "pool_submissions": report.pool_submissions,
        "problems": report.problems,
    }))
    .into_response())
}

const HOUR_MS: i64 = 3_600_000;

#[derive(Deserialize)]
struct WindowQuery {
    /// Hours of history, 1-720 [24].
    hours: Option<u32>,
}

/// Totals of a partner's sites (`None`: every site) over the last `hours`: work, shares, miners and
/// the consent rate, and the pool-accepted work as a number.
async fn activity(
    broker: &Broker,
    partner: Option<i64>,
    hours: u32,
) -> Result<(serde_json::Value, u128), ApiError> {
    let hours = hours.clamp(1, 720);
    let bucket_ms = if hours <= 48 { HOUR_MS / 4 } else { HOUR_MS * 6 };
    let buckets = (i64::from(hours) * HOUR_MS / bucket_ms) as usize;
    let since = (now_ms() / bucket_ms + 1) * bucket_ms - buckets as i64 * bucket_ms;
    let (series, device_rate) = broker.ledger.activity(partner, since, bucket_ms, buckets).await?;
    let accepted: u128 = series.iter().map(|b| b.accepted_work.0).sum();
    let verified: u128 = series.iter().map(|b| b.verified_work.0).sum();
    let (answers, yes) = broker.ledger.consent_counts(partner, since).await?;
    let json = json!({
        "bucket_ms": bucket_ms, "series": series, "device_hashrate": Work(device_rate),
        "accepted_work": Work(accepted), "verified_work": Work(verified),
        "consent": { "answers": answers, "given": yes },
    });
    Ok((json, accepted))
}

/// `GET /api/v1/partner/dashboard?hours=24` with `Authorization: Bearer <dashboard key>`.
async fn partner_dashboard(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    Query(query): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    let partner = broker.ledger.partner_by_secret(bearer(&headers)?).await?.ok_or(ApiError::Unauthorized)?;
    let (mut activity, accepted) = activity(&broker, Some(partner.id), query.hours.unwrap_or(24)).await?;
    let commission = partner.commission_bps.unwrap_or(broker.ledger.default_commission().await?);
    let economics = economics_settings(&broker).await?;
    // The PPS estimate of the window's pool-accepted work, before and after commission.
    let estimate = economics.as_ref().map(|e| {
        let gross = settlement::pps_estimate(accepted, e.block_reward_sats, e.network_difficulty.0);
        let net = gross - gross * u64::from(commission) / settlement::BPS_DENOMINATOR;
        json!({ "gross_sats": gross, "net_sats": net })
    });
    activity["ok"] = json!(true);
    activity["partner"] = json!({ "key": partner.key, "name": partner.name, "commission_bps": commission });
    activity["statement"] = json!(broker.ledger.statement(partner.id).await?);
    activity["estimate"] = json!(estimate);
    activity["economics"] = json!(economics);
    Ok(Json(activity).into_response())
}

/// `GET /api/v1/admin/overview?hours=24`: the operator's view, totals per partner.
async fn overview(
    State(broker): State<Arc<Broker>>,
    headers: HeaderMap,
    Query(query): Query<WindowQuery>,
) -> Result<Response, ApiError> {
    authorize_admin(&broker, &headers).await?;
    let hours = query.hours.unwrap_or(24);
    let mut partners = Vec::new();
    for partner in broker.ledger.partners().await? {
        let (mut row, _) = activity(&broker, Some(partner.id), hours).await?;
        row.as_object_mut().expect("object").remove("series");
        row["partner"] = json!(partner);
        row["statement"] = json!(broker.ledger.statement(partner.id).await?);
        partners.push(row);
    }
    let (everything, _) = activity(&broker, None, hours).await?;
    let balances: serde_json::Map<String, serde_json::Value> =
        broker.ledger.balances().await?.into_iter().map(|(a, b)| (a, json!(b))).collect();
    Ok(Json(json!({ "ok": true, "all": everything, "partners": partners, "balances": balances }))
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentAnswer {
    site: String,
    given: bool,
    /// The answer's random id (the SDK's consent record id): an answer counts once.
    id: String,
}

/// `POST /api/v1/consent {"site", "given", "id"}` from the SDK when the visitor answers the consent
/// dialog: counted per site for the consent rate under the rules in docs/PROTOCOL.md (once per id,
/// a few per visitor and day, requests per address rate-limited); the visitor is stored only as a
/// daily-salted hash. The body is read whatever its content type: `navigator.sendBeacon` from
/// another origin can only send text.
async fn consent_answer(
    State(broker): State<Arc<Broker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: String,
) -> Result<Response, ApiError> {
    if !broker.consent_answers_allowed(peer.ip()) {
        return Err(ApiError::RateLimited);
    }
    let answer: ConsentAnswer =
        serde_json::from_str(&request).map_err(|_| ApiError::BadRequest("bad_request"))?;
    let id_ok = (8..=64).contains(&answer.id.len()) && answer.id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok {
        return Err(ApiError::BadRequest("bad_id"));
    }
    let counted =
        match broker.ledger.record_consent_answer(&answer.site, answer.given, &answer.id, peer.ip()).await? {
            ConsentCount::UnknownSite => return Err(ApiError::NotFound),
            ConsentCount::Counted => true,
            ConsentCount::NotCounted => false,
        };
    Ok(Json(json!({ "ok": true, "counted": counted })).into_response())
}
