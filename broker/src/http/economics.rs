//! The partner-economics APIs: the operator's (the admin router: partners, commission, periods,
//! settlement, payouts, ledger check, an overview per partner), the partner dashboard's (the
//! partner's dashboard key, [`PartnerKey`]) and the SDK's anonymous consent-answer count. Handlers are thin: the
//! books are in [`crate::books`], the math in [`crate::books::settlement`].

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use minepass::protocol::Work;
use serde::{Deserialize, Serialize};

use super::ClientAddress;
use super::auth::PartnerKey;
use super::error::{Answer, ApiError, body};
use crate::books::reports::{Bucket, Statement};
use crate::books::settlement::{self, PartnerShare};
use crate::books::{self, Partner, Payout, Period, Source};
use crate::session::Broker;
use crate::store::ConsentCount;
use crate::store::now_ms;

/// The partner dashboard's and the SDK's routes.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/api/v1/partner/dashboard", get(partner_dashboard))
        .route("/api/v1/consent", post(consent_answer))
}

/// Routes under `/api/v1/admin` (nested behind the admin check).
pub fn admin_routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/partners", get(list_partners).post(add_partner))
        .route("/partners/{partner}", patch(update_partner))
        .route("/commission", put(set_default_commission))
        .route("/economics", put(set_economics))
        .route("/sites/{site}/partner", put(assign_site))
        .route("/periods", get(list_periods).post(add_period))
        .route("/periods/{period}/settle", post(settle))
        .route("/payouts", get(list_payouts))
        .route("/payouts.csv", get(payouts_csv))
        .route("/payouts/{id}/paid", post(mark_paid))
        .route("/ledger/check", get(check))
        .route("/overview", get(overview))
}

#[derive(Serialize)]
struct PartnersAnswer {
    default_commission_bps: u32,
    partners: Vec<Partner>,
}

#[derive(Serialize)]
struct NewPartnerAnswer {
    key: String,
    /// Shown once: the ledger keeps its hash.
    dashboard_key: String,
}

#[derive(Serialize)]
struct PartnerAnswer {
    partner: Partner,
}

#[derive(Serialize)]
struct CommissionAnswer {
    default_commission_bps: u32,
}

#[derive(Serialize)]
struct EconomicsAnswer {
    economics: EconomicsSettings,
}

#[derive(Serialize)]
struct AssignedAnswer {
    site: String,
    partner: String,
}

#[derive(Serialize)]
struct PeriodsAnswer {
    periods: Vec<Period>,
}

#[derive(Serialize)]
struct PeriodAnswer {
    period: Period,
}

#[derive(Serialize)]
struct SettledAnswer {
    earnings: u64,
    commission: u64,
    partners: Vec<SettledPartner>,
}

#[derive(Serialize)]
struct SettledPartner {
    partner: i64,
    gross: u64,
    commission: u64,
    net: u64,
    payout: u64,
    carry: u64,
}

impl From<&PartnerShare> for SettledPartner {
    fn from(p: &PartnerShare) -> SettledPartner {
        SettledPartner {
            partner: p.partner,
            gross: p.gross,
            commission: p.commission,
            net: p.net,
            payout: p.payout,
            carry: p.carry,
        }
    }
}

#[derive(Serialize)]
struct PayoutsAnswer {
    payouts: Vec<Payout>,
}

#[derive(Serialize)]
struct PaidAnswer {
    id: i64,
}

/// `ledger check` (its `ok` is whether the books hold, so it is not an [`Answer`]).
#[derive(Serialize)]
struct CheckAnswer {
    ok: bool,
    entries: u64,
    postings: u64,
    shares: u64,
    pool_submissions: u64,
    rolled_up_days: u64,
    rolled_up_shares: u64,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct Consent {
    answers: u64,
    given: u64,
}

/// Activity of some sites over a window.
#[derive(Serialize)]
struct Activity {
    bucket_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<Bucket>>,
    device_hashrate: Work,
    accepted_work: Work,
    verified_work: Work,
    consent: Consent,
}

#[derive(Serialize)]
struct DashboardPartner {
    key: String,
    name: String,
    commission_bps: u32,
}

#[derive(Serialize)]
struct Estimate {
    gross_sats: u64,
    net_sats: u64,
}

#[derive(Serialize)]
struct DashboardAnswer {
    #[serde(flatten)]
    activity: Activity,
    partner: DashboardPartner,
    statement: Statement,
    estimate: Option<Estimate>,
    economics: Option<EconomicsSettings>,
}

#[derive(Serialize)]
struct OverviewRow {
    #[serde(flatten)]
    activity: Activity,
    partner: Partner,
    statement: Statement,
}

#[derive(Serialize)]
struct OverviewAnswer {
    all: Activity,
    partners: Vec<OverviewRow>,
    balances: std::collections::BTreeMap<String, i64>,
}

#[derive(Serialize)]
struct CountedAnswer {
    counted: bool,
}

async fn existing_partner(broker: &Broker, key: &str) -> Result<Partner, ApiError> {
    broker.ledger.partner_by_key(key).await?.ok_or(ApiError::NotFound)
}

async fn list_partners(State(broker): State<Arc<Broker>>) -> Result<Answer<PartnersAnswer>, ApiError> {
    let default = broker.ledger.default_commission().await?;
    Ok(Answer::ok(PartnersAnswer {
        default_commission_bps: default,
        partners: broker.ledger.partners().await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPartnerRequest {
    name: String,
}

/// `POST /api/v1/admin/partners {"name"}`: the answer holds the dashboard key, shown only here.
async fn add_partner(
    State(broker): State<Arc<Broker>>,
    request: Result<Json<NewPartnerRequest>, JsonRejection>,
) -> Result<Answer<NewPartnerAnswer>, ApiError> {
    let request = body(request)?;
    let partner = broker.ledger.add_partner(&request.name).await?;
    Ok(Answer::created(NewPartnerAnswer { key: partner.key, dashboard_key: partner.secret }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePartnerRequest {
    /// Basis points, or `null` for the global default.
    commission_bps: Option<u32>,
}

async fn update_partner(
    State(broker): State<Arc<Broker>>,
    Path(key): Path<String>,
    request: Result<Json<UpdatePartnerRequest>, JsonRejection>,
) -> Result<Answer<PartnerAnswer>, ApiError> {
    let request = body(request)?;
    broker.ledger.set_partner_commission(&key, request.commission_bps).await?;
    Ok(Answer::ok(PartnerAnswer { partner: existing_partner(&broker, &key).await? }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultCommissionRequest {
    default_bps: u32,
}

async fn set_default_commission(
    State(broker): State<Arc<Broker>>,
    request: Result<Json<DefaultCommissionRequest>, JsonRejection>,
) -> Result<Answer<CommissionAnswer>, ApiError> {
    let bps = body(request)?.default_bps;
    broker.ledger.set_default_commission(bps).await?;
    Ok(Answer::ok(CommissionAnswer { default_commission_bps: bps }))
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
    request: Result<Json<EconomicsSettings>, JsonRejection>,
) -> Result<Answer<EconomicsAnswer>, ApiError> {
    let settings = body(request)?;
    if settings.network_difficulty.0 == 0 || settings.block_reward_sats == 0 {
        return Err(ApiError::BadRequest("bad_economics"));
    }
    let text = serde_json::to_string(&settings).map_err(anyhow::Error::from)?;
    broker.ledger.set_setting("economics", &text).await?;
    Ok(Answer::ok(EconomicsAnswer { economics: settings }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignSiteRequest {
    partner: String,
}

async fn assign_site(
    State(broker): State<Arc<Broker>>,
    Path(site): Path<String>,
    request: Result<Json<AssignSiteRequest>, JsonRejection>,
) -> Result<Answer<AssignedAnswer>, ApiError> {
    let request = body(request)?;
    broker.ledger.assign_site(&site, &request.partner).await?;
    Ok(Answer::ok(AssignedAnswer { site, partner: request.partner }))
}

async fn list_periods(State(broker): State<Arc<Broker>>) -> Result<Answer<PeriodsAnswer>, ApiError> {
    Ok(Answer::ok(PeriodsAnswer { periods: broker.ledger.periods().await? }))
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
    request: Result<Json<NewPeriodRequest>, JsonRejection>,
) -> Result<Answer<PeriodAnswer>, ApiError> {
    let request = body(request)?;
    let (Ok(from), Ok(to)) = (books::parse_time(&request.from), books::parse_time(&request.to)) else {
        return Err(ApiError::BadRequest("bad_time"));
    };
    // The period's name, times and amount are checked by the books, and a name taken by another
    // request, even one racing this, is `period_exists` from the unique key.
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
    Ok(Answer::created(PeriodAnswer { period }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleRequest {
    threshold_sats: u64,
}

async fn settle(
    State(broker): State<Arc<Broker>>,
    Path(name): Path<String>,
    request: Result<Json<SettleRequest>, JsonRejection>,
) -> Result<Answer<SettledAnswer>, ApiError> {
    let request = body(request)?;
    // Whether it was settled already is decided inside the settling transaction, not here.
    let result = broker.ledger.settle_period(&name, request.threshold_sats).await?;
    let partners = result.partners.iter().map(SettledPartner::from).collect();
    Ok(Answer::ok(SettledAnswer { earnings: result.earnings, commission: result.commission, partners }))
}

#[derive(Deserialize)]
struct PayoutsQuery {
    #[serde(default)]
    all: bool,
}

async fn list_payouts(
    State(broker): State<Arc<Broker>>,
    Query(query): Query<PayoutsQuery>,
) -> Result<Answer<PayoutsAnswer>, ApiError> {
    Ok(Answer::ok(PayoutsAnswer { payouts: broker.ledger.payouts(!query.all).await? }))
}

/// `GET /api/v1/admin/payouts.csv`: the payouts due, for a payment run.
async fn payouts_csv(State(broker): State<Arc<Broker>>) -> Result<Response, ApiError> {
    let csv = books::payouts_csv(&broker.ledger.payouts(true).await?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

async fn mark_paid(
    State(broker): State<Arc<Broker>>,
    Path(id): Path<i64>,
) -> Result<Answer<PaidAnswer>, ApiError> {
    broker.ledger.mark_paid(id).await?;
    Ok(Answer::ok(PaidAnswer { id }))
}

async fn check(State(broker): State<Arc<Broker>>) -> Result<Json<CheckAnswer>, ApiError> {
    let report = broker.ledger.check().await?;
    Ok(Json(CheckAnswer {
        ok: report.problems.is_empty(),
        entries: report.entries,
        postings: report.postings,
        shares: report.shares,
        pool_submissions: report.pool_submissions,
        rolled_up_days: report.rolled_up_days,
        rolled_up_shares: report.rolled_up_shares,
        problems: report.problems,
    }))
}

const HOUR_MS: i64 = 3_600_000;

#[derive(Deserialize)]
struct WindowQuery {
    /// Hours of history, 1-720 [24].
    hours: Option<u32>,
}

/// Totals of a partner's sites (`None`: every site) over the last `hours`: work, shares, miners and
/// the consent rate, and the pool-accepted work as a number.
async fn activity(broker: &Broker, partner: Option<i64>, hours: u32) -> Result<(Activity, u128), ApiError> {
    let hours = hours.clamp(1, 720);
    let bucket_ms = if hours <= 48 { HOUR_MS / 4 } else { HOUR_MS * 6 };
    let buckets = (i64::from(hours) * HOUR_MS / bucket_ms) as usize;
    let since = (now_ms() / bucket_ms + 1) * bucket_ms - buckets as i64 * bucket_ms;
    let (series, device_rate) = broker.ledger.activity(partner, since, bucket_ms, buckets).await?;
    let accepted: u128 = series.iter().map(|b| b.accepted_work.0).sum();
    let verified: u128 = series.iter().map(|b| b.verified_work.0).sum();
    let (answers, yes) = broker.ledger.consent_counts(partner, since).await?;
    let activity = Activity {
        bucket_ms,
        series: Some(series),
        device_hashrate: Work(device_rate),
        accepted_work: Work(accepted),
        verified_work: Work(verified),
        consent: Consent { answers, given: yes },
    };
    Ok((activity, accepted))
}

/// `GET /api/v1/partner/dashboard?hours=24` with `Authorization: Bearer <dashboard key>`.
async fn partner_dashboard(
    State(broker): State<Arc<Broker>>,
    PartnerKey(partner): PartnerKey,
    Query(query): Query<WindowQuery>,
) -> Result<Answer<DashboardAnswer>, ApiError> {
    let (activity, accepted) = activity(&broker, Some(partner.id), query.hours.unwrap_or(24)).await?;
    let commission = partner.commission_bps.unwrap_or(broker.ledger.default_commission().await?);
    let economics = economics_settings(&broker).await?;
    // The PPS estimate of the window's pool-accepted work, before and after commission.
    let estimate = economics.as_ref().map(|e| {
        let gross = settlement::pps_estimate(accepted, e.block_reward_sats, e.network_difficulty.0);
        let net = gross - gross * u64::from(commission) / settlement::BPS_DENOMINATOR;
        Estimate { gross_sats: gross, net_sats: net }
    });
    Ok(Answer::ok(DashboardAnswer {
        activity,
        statement: broker.ledger.statement(partner.id).await?,
        partner: DashboardPartner { key: partner.key, name: partner.name, commission_bps: commission },
        estimate,
        economics,
    }))
}

/// `GET /api/v1/admin/overview?hours=24`: the operator's view, totals per partner.
async fn overview(
    State(broker): State<Arc<Broker>>,
    Query(query): Query<WindowQuery>,
) -> Result<Answer<OverviewAnswer>, ApiError> {
    let hours = query.hours.unwrap_or(24);
    let mut partners = Vec::new();
    for partner in broker.ledger.partners().await? {
        let (mut activity, _) = activity(&broker, Some(partner.id), hours).await?;
        activity.series = None;
        let statement = broker.ledger.statement(partner.id).await?;
        partners.push(OverviewRow { activity, partner, statement });
    }
    let (all, _) = activity(&broker, None, hours).await?;
    let balances = broker.ledger.balances().await?.into_iter().collect();
    Ok(Answer::ok(OverviewAnswer { all, partners, balances }))
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
    ClientAddress(client): ClientAddress,
    request: String,
) -> Result<Answer<CountedAnswer>, ApiError> {
    if !broker.consent_answers_allowed(client) {
        return Err(ApiError::RateLimited);
    }
    let answer: ConsentAnswer =
        serde_json::from_str(&request).map_err(|_| ApiError::BadRequest("bad_request"))?;
    let id_ok = (8..=64).contains(&answer.id.len()) && answer.id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok {
        return Err(ApiError::BadRequest("bad_id"));
    }
    let counted =
        match broker.ledger.record_consent_answer(&answer.site, answer.given, &answer.id, client).await? {
            ConsentCount::UnknownSite => return Err(ApiError::NotFound),
            ConsentCount::Counted => true,
            ConsentCount::NotCounted => false,
        };
    Ok(Answer::ok(CountedAnswer { counted }))
}
