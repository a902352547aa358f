//! The SendCloud sub-account dialect: `/api/subAccount/*`.
//!
//! Authenticates as SendCloud does (appId + MD5 signature + timestamp), parses
//! the vendor's parameters into domain types, calls the service layer and
//! renders the vendor's envelope. No business rule lives here. The choices this
//! dialect makes where the spec is silent are listed in `docs/sendcloud.md`.

mod bills;
mod envelope;
mod handlers;
pub mod params;
pub mod signature;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;
use subledger_domain::money::Currency;
use subledger_domain::oplog::Actor;
use subledger_service::Change;
use subledger_service::tenants::Tenant;

pub use envelope::Code;
use envelope::Refusal;
use params::Params;

use crate::AppState;

/// SendCloud's money is yuan (`money`, `balance`, `totalMoney`): its
/// transfers move this currency, its balances and bills are those in it.
pub(crate) const CURRENCY: Currency = Currency::Cny;

/// Settings of the SendCloud dialect.
#[derive(Debug, Clone)]
pub struct SendCloudConfig {
    /// How far a request's `timestamp` may be from server time, either way.
    pub timestamp_window_ms: i64,
    /// Whether `transferIn` must carry a `timestamp` (and so replay protection).
    /// Turn off only for legacy clients that cannot send one.
    pub transfer_requires_timestamp: bool,
    /// Largest request body accepted.
    pub body_bytes_max: usize,
}

impl Default for SendCloudConfig {
    fn default() -> Self {
        SendCloudConfig { timestamp_window_ms: 6_000, transfer_requires_timestamp: true, body_bytes_max: 64 * 1024 }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/subAccount/list", get(handlers::list).post(handlers::list))
        .route("/api/subAccount/create", post(handlers::create).fallback(handlers::only_post))
        .route("/api/subAccount/transferIn", post(handlers::transfer_in).fallback(handlers::only_post))
        .route("/api/subAccount/quota", post(handlers::quota).fallback(handlers::only_post))
        .route("/api/subAccount/bill", get(bills::bill).post(bills::bill))
        .route("/api/subAccount/billDetail", get(bills::bill_detail).post(bills::bill_detail))
}

/// How an endpoint refuses a signed request that is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replays {
    /// The request's signature is recorded in the database until its
    /// timestamp leaves the window (`Services::first_sighting`); a second
    /// sighting, by any process, gets 425. For endpoints that only read.
    Recorded,
    /// As `Recorded`, but recorded with the endpoint's change, in its
    /// transaction (`Change::signed`): a change that fails leaves no record,
    /// so the same request can be sent again, and a replay changes nothing.
    WithChange,
    /// The endpoint's own idempotency key refuses replays (`transferIn`: the
    /// timestamp and signature are its ledger key, which the ledger keeps
    /// with the first outcome), so the hot path pays no extra write.
    ByLedgerKey,
}

/// A request that passed authentication.
struct SignedCall {
    tenant: Tenant,
    params: Params,
    /// The signature, lowercased; with a timestamp it names this exact request.
    signature: String,
    has_timestamp: bool,
    /// For a timestamped call to an endpoint that records it with its
    /// change: until when the record must refuse replays.
    replay_guard_until_ms: Option<i64>,
}

impl SignedCall {
    /// The context of the change this call asks for: its replay guard,
    /// recorded with the change when the endpoint records it so.
    fn change(&self) -> Change {
        match self.replay_guard_until_ms {
            Some(expires_at_ms) => Change::signed(self.tenant.id, &self.signature, expires_at_ms),
            None => Change::by(Actor::Tenant),
        }
    }
}

/// Reads the parameters and checks appId, signature, timestamp and replays, in that order.
async fn authenticate(state: &AppState, request: Request, timestamp_required: bool, replays: Replays) -> Result<SignedCall, Refusal> {
    let config = &state.sendcloud;
    let (parts, body) = request.into_parts();
    let mut params = Params::default();
    if let Some(query) = parts.uri.query() {
        params.extend_urlencoded(query.as_bytes()).map_err(|_| Refusal(Code::Failed))?;
    }
    let body = read_body(body, config.body_bytes_max).await?;
    if !body.is_empty() {
        let form = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(Refusal(Code::Failed));
        }
        params.extend_urlencoded(&body).map_err(|_| Refusal(Code::Failed))?;
    }

    let app_id = params.get("appId").filter(|v| !v.is_empty()).ok_or(Refusal(Code::AppIdMissing))?;
    if app_id.len() > 64 {
        return Err(Refusal(Code::AppIdUnknown));
    }
    let tenant = state.services.tenant_by_app_id(app_id).await.map_err(|e| storage_refusal(e, Code::Failed))?.ok_or(Refusal(Code::AppIdUnknown))?;

    let presented = params.get(signature::SIGNATURE_PARAM).filter(|s| signature::is_well_formed(s)).ok_or(Refusal(Code::SignatureParam))?;
    let expected = signature::expected_signature(tenant.signing_key(), &params);
    let presented = presented.to_ascii_lowercase();
    if !subledger_service::secrets::secrets_equal(presented.as_bytes(), expected.as_bytes()) {
        return Err(Refusal(Code::SignatureWrong));
    }

    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut replay_guard_until_ms = None;
    let has_timestamp = match params.get("timestamp") {
        Some(text) => {
            let at_ms = parse_timestamp_ms(text).ok_or(Refusal(Code::Timestamp))?;
            if (now_ms - at_ms).abs() > config.timestamp_window_ms {
                return Err(Refusal(Code::Timestamp));
            }
            let expires_at_ms = at_ms + config.timestamp_window_ms;
            match replays {
                Replays::Recorded => {
                    let first = state.services.first_sighting(tenant.id, &presented, expires_at_ms).await.map_err(|e| storage_refusal(e, Code::Failed))?;
                    if !first {
                        return Err(Refusal(Code::Timestamp));
                    }
                }
                Replays::WithChange => {
                    // Refused before any work; recorded with the change, whose
                    // transaction decides a race between two copies.
                    if state.services.seen_before(tenant.id, &presented, now_ms).await.map_err(|e| storage_refusal(e, Code::Failed))? {
                        return Err(Refusal(Code::Timestamp));
                    }
                    replay_guard_until_ms = Some(expires_at_ms);
                }
                Replays::ByLedgerKey => {}
            }
            true
        }
        None if timestamp_required => return Err(Refusal(Code::Timestamp)),
        None => false,
    };
    Ok(SignedCall { tenant, params, signature: presented, has_timestamp, replay_guard_until_ms })
}

async fn read_body(body: Body, bytes_max: usize) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, bytes_max).await.map_err(|_| Refusal(Code::Failed))
}

/// Milliseconds since the epoch, as digits only (at most 16).
fn parse_timestamp_ms(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The answer to a request the server could not serve, because too many were
/// in flight or it outlived its deadline: 400 (请求失败) in the envelope, HTTP
/// 200 like every answer of this dialect; the spec has no busy code.
pub fn unavailable() -> axum::response::Response {
    axum::response::IntoResponse::into_response(Refusal(Code::Failed))
}

/// What a handler does not map itself: an amount past its limit or a value
/// the database refused is the request's fault, 400 (请求失败, the spec's
/// code for a bad request); storage and availability failures are logged
/// and shown as the endpoint's failure code.
fn storage_refusal(error: subledger_service::ServiceError, code: Code) -> Refusal {
    use subledger_service::ServiceError;
    // A signed request seen before, refused by the record of its first sighting.
    if let ServiceError::Replayed = error {
        return Refusal(Code::Timestamp);
    }
    if let ServiceError::AmountTooLarge(_) | ServiceError::Invalid { .. } = error {
        tracing::warn!(%error, "SendCloud request refused by the service layer");
        return Refusal(Code::Failed);
    }
    // The spec has no code for a busy server: the endpoint's failure code
    // says that nothing was done, as for the in-flight cap.
    if let ServiceError::Busy(_) = error {
        tracing::warn!(%error, code = code.number(), "SendCloud request refused: the server is busy");
        return Refusal(code);
    }
    tracing::error!(%error, code = code.number(), "SendCloud request failed in the service layer");
    Refusal(code)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_timeout_or_busy_server_is_http_200_with_400_in_the_envelope() {
        let response = super::unavailable();
        assert_eq!(response.status(), http::StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, serde_json::json!({"message": "请求失败", "result": false, "info": {}, "statusCode": 400}));
    }
}
