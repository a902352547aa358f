//! The one refusal type of the ad-account dialect, its codes, and the mapping
//! of service errors onto them (once, here).
//!
//! A refusal is the envelope with `code` and `message` and no `data`. It is
//! sent with HTTP 200 like a success, except where HTTP itself has the word:
//! 401 (no or an unknown `access_token`), 403 (a sub-user's session without
//! the application), 405, 429 (with `Retry-After`) and 503 (busy: nothing was
//! done). Those carry code 1001. Messages are ours or Meta's, never an
//! internal error's text: anything unexpected is logged and answered as
//! 1001 "system error".

use std::borrow::Cow;

use http::StatusCode;
use subledger_ads::PlatformError;
use subledger_domain::ads::RechargeRefusal;
use subledger_domain::insights::InsightsError;
use subledger_service::ads::AdRefusal;
use subledger_service::{Resource, ServiceError};

/// The spec's codes (and 1012, ours: the spec skips that number).
pub mod code {
    pub const SUCCESS: i64 = 1;
    /// 系统异常: anything else, including malformed input no other code names.
    pub const SYSTEM: i64 = 1001;
    /// `id` missing or empty.
    pub const ID_MISSING: i64 = 1002;
    /// `id` names nothing of this tenant.
    pub const ID_INVALID: i64 = 1003;
    pub const AMOUNT_MISSING: i64 = 1004;
    pub const AMOUNT_INVALID: i64 = 1005;
    /// Meta refused; the message is Meta's.
    pub const META_REFUSED: i64 = 1006;
    pub const AMOUNT_TOO_LOW: i64 = 1007;
    pub const BUSINESS_ID_MISSING: i64 = 1008;
    pub const FIELDS_EMPTY: i64 = 1009;
    pub const FIELDS_INVALID: i64 = 1010;
    /// Meta did not answer (timeout, unavailable, rate limited), or a write's
    /// outcome is still pending.
    pub const UPSTREAM_TIMEOUT: i64 = 1011;
    /// Ours: the tenant's USD wallet cannot fund the raise.
    pub const FUNDS_INSUFFICIENT: i64 = 1012;
    pub const STATUS: i64 = 1013;
    pub const TIME_RANGE: i64 = 1015;
    pub const TIME_RANGE_TOO_OLD: i64 = 1016;
    pub const TOTAL_POSTBACKS_ALONE: i64 = 1017;
    pub const BREAKDOWNS: i64 = 1018;
    pub const SORT: i64 = 1019;
    pub const VIOLATION: i64 = 1020;
    pub const BLACKLISTED: i64 = 1021;
    pub const UNBINDING_PAUSED: i64 = 1022;
    pub const PIXEL_ID_MISSING: i64 = 1023;
    pub const TIME_INCREMENT: i64 = 1024;
    pub const TOO_MANY_DAYS: i64 = 1025;
    pub const LIMIT: i64 = 1026;
    pub const PAGING: i64 = 1027;
}

/// Why a request failed: the HTTP status, the envelope's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: i64,
    pub message: Cow<'static, str>,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    /// A refusal in the envelope with HTTP 200.
    pub fn new(code: i64, message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal { status: StatusCode::OK, code, message: message.into(), retry_after_s: None }
    }

    /// 1001 with a message naming what was wrong with the input.
    pub fn input(message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal::new(code::SYSTEM, message)
    }

    /// 1001 "system error": something failed on our side (logged by the caller).
    pub fn system() -> Refusal {
        Refusal::new(code::SYSTEM, "system error")
    }

    fn http(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal { status, code: code::SYSTEM, message: message.into(), retry_after_s: None }
    }

    pub fn unauthenticated() -> Refusal {
        Refusal::http(StatusCode::UNAUTHORIZED, "invalid access_token")
    }

    pub fn method_not_allowed() -> Refusal {
        Refusal::http(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }

    pub fn unavailable(message: &'static str) -> Refusal {
        Refusal { retry_after_s: Some(1), ..Refusal::http(StatusCode::SERVICE_UNAVAILABLE, message) }
    }

    /// The code an operation answers: codes the spec does not list for it
    /// become 1001, keeping the message (which never holds internals) —
    /// except Meta's own answers (1006 refused with Meta's message, 1011 timed
    /// out or pending) and ours for funds (1012), which mean the same
    /// whichever operation met them (the issue: Graph errors → 1006).
    pub fn within(mut self, codes: &[i64]) -> Refusal {
        const EVERYWHERE: [i64; 3] = [code::META_REFUSED, code::UPSTREAM_TIMEOUT, code::FUNDS_INSUFFICIENT];
        if self.code != code::SYSTEM && !codes.contains(&self.code) && !EVERYWHERE.contains(&self.code) {
            self.code = code::SYSTEM;
        }
        self
    }
}

/// The code of a reason an account cannot be topped up now.
pub fn recharge_refusal(refusal: RechargeRefusal) -> Refusal {
    let code = match refusal {
        RechargeRefusal::Violation => code::VIOLATION,
        RechargeRefusal::Blacklisted(_) => code::BLACKLISTED,
        RechargeRefusal::Status(_) => code::STATUS,
    };
    Refusal::new(code, refusal.to_string())
}

fn ad_refusal(refusal: AdRefusal) -> Refusal {
    let code = match &refusal {
        AdRefusal::Recharge(recharge) => return recharge_refusal(*recharge),
        AdRefusal::ResetStatus(_) => code::STATUS,
        AdRefusal::CapNotAboveSpent { .. } => code::AMOUNT_TOO_LOW,
        AdRefusal::UnbindingPaused => code::UNBINDING_PAUSED,
        AdRefusal::InProgress | AdRefusal::NotApplied => code::UPSTREAM_TIMEOUT,
        AdRefusal::SearchIdReused => code::SYSTEM,
    };
    Refusal::new(code, refusal.to_string())
}

/// What Meta did not do. Meta's own message is passed on when it refused;
/// otherwise the message is ours (a transport error may name hosts).
fn upstream(error: PlatformError) -> Refusal {
    match error {
        PlatformError::Timeout => Refusal::new(code::UPSTREAM_TIMEOUT, "the Facebook API did not answer in time"),
        PlatformError::Unavailable(detail) => {
            tracing::warn!(%detail, "the ad platform is unavailable");
            Refusal::new(code::UPSTREAM_TIMEOUT, "the Facebook API is unavailable; retry later")
        }
        PlatformError::RateLimited { retry_after_s } => Refusal::new(code::UPSTREAM_TIMEOUT, format!("the Facebook API's rate limit was reached; retry after {retry_after_s} s")),
        PlatformError::Malformed(detail) => {
            tracing::warn!(%detail, "the ad platform answered what cannot be read");
            Refusal::new(code::UPSTREAM_TIMEOUT, "the Facebook API's answer could not be read; retry later")
        }
        PlatformError::Refused { message, .. } => Refusal::new(code::META_REFUSED, message),
        // The account is the agency's (the service checked it first): what
        // Meta does not know, or will not show this agency, is the object
        // the call named (a Business Manager, a pixel) or the account's
        // state at Meta. Meta refused.
        PlatformError::NotFound => Refusal::new(code::META_REFUSED, "the Facebook API does not know the object named, or this agency cannot see it"),
    }
}

impl From<ServiceError> for Refusal {
    fn from(error: ServiceError) -> Refusal {
        match error {
            ServiceError::NotFound(Resource::AdAccount) => Refusal::new(code::ID_INVALID, "id is not an ad account of this agency"),
            ServiceError::NotFound(Resource::AdRequest) => Refusal::new(code::ID_INVALID, "id is not an account creation request of this agency"),
            ServiceError::AdRefused(refusal) => ad_refusal(refusal),
            ServiceError::Upstream(error) => upstream(error),
            ServiceError::Rejected(rejection) => Refusal::new(code::FUNDS_INSUFFICIENT, format!("the agency's USD wallet cannot fund this spend cap ({rejection})")),
            ServiceError::Invalid { field: field @ ("page_num" | "page_size"), reason } => Refusal::new(code::PAGING, format!("invalid {field}: {reason}")),
            ServiceError::Invalid { field, reason } => Refusal::input(format!("invalid {field}: {reason}")),
            ServiceError::AmountTooLarge(what) => Refusal::input(format!("amount too large: {what}")),
            ServiceError::Forbidden { app, code } => Refusal::http(StatusCode::FORBIDDEN, format!("this needs the application {app} ({code})")),
            ServiceError::Unauthenticated(_) => Refusal::unauthenticated(),
            ServiceError::RateLimited { retry_after_s } => Refusal { retry_after_s: Some(retry_after_s.max(1)), ..Refusal::http(StatusCode::TOO_MANY_REQUESTS, "too many requests; retry later") },
            ServiceError::Busy(_) => Refusal::unavailable("the service is busy; nothing was done, retry"),
            ServiceError::Unavailable(_) => Refusal::unavailable("the service is shutting down; nothing was done, retry"),
            ServiceError::Storage(storage) if storage.is_retryable() => {
                tracing::warn!(error = %storage, "ad-account request hit a transient storage conflict");
                Refusal::unavailable("the database is busy; nothing was changed, retry")
            }
            other => {
                tracing::error!(error = %other, "ad-account request failed");
                Refusal::system()
            }
        }
    }
}

impl From<InsightsError> for Refusal {
    fn from(error: InsightsError) -> Refusal {
        let code = match &error {
            InsightsError::FieldsEmpty => code::FIELDS_EMPTY,
            InsightsError::FieldsInvalid(_) => code::FIELDS_INVALID,
            InsightsError::TimeRange(_) => code::TIME_RANGE,
            InsightsError::TooFarBack { .. } => code::TIME_RANGE_TOO_OLD,
            InsightsError::PostbacksNotAlone => code::TOTAL_POSTBACKS_ALONE,
            InsightsError::Breakdowns(_) => code::BREAKDOWNS,
            InsightsError::Sort(_) => code::SORT,
            InsightsError::TimeIncrement(_) => code::TIME_INCREMENT,
            InsightsError::DailyRangeTooLong { .. } => code::TOO_MANY_DAYS,
            InsightsError::Limit(_) => code::LIMIT,
        };
        Refusal::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_an_operation_does_not_list_become_1001_with_their_message() {
        let refusal = Refusal::new(code::STATUS, "the ad account is closed").within(&[code::ID_MISSING]);
        assert_eq!((refusal.code, refusal.message.as_ref()), (code::SYSTEM, "the ad account is closed"));
        // Meta's own answers and ours for funds mean the same for every operation.
        assert_eq!(Refusal::new(code::META_REFUSED, "Invalid parameter").within(&[code::ID_MISSING]).code, code::META_REFUSED);
        assert_eq!(Refusal::new(code::FUNDS_INSUFFICIENT, "insufficient").within(&[code::ID_MISSING]).code, code::FUNDS_INSUFFICIENT);
        assert_eq!(Refusal::new(code::ID_MISSING, "id is required").within(&[code::ID_MISSING]).code, code::ID_MISSING);
    }

    #[test]
    fn service_errors_map_to_the_spec_codes() {
        use subledger_domain::ads::{AdStatus, BlacklistLevel};
        let cases = [
            (ServiceError::NotFound(Resource::AdAccount), code::ID_INVALID),
            (ServiceError::NotFound(Resource::AdRequest), code::ID_INVALID),
            (ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Violation)), code::VIOLATION),
            (ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Blacklisted(BlacklistLevel::Today))), code::BLACKLISTED),
            (ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Status(AdStatus::Closed))), code::STATUS),
            (ServiceError::AdRefused(AdRefusal::ResetStatus(AdStatus::Closed)), code::STATUS),
            (ServiceError::AdRefused(AdRefusal::CapNotAboveSpent { amount_spent_cents: 5 }), code::AMOUNT_TOO_LOW),
            (ServiceError::AdRefused(AdRefusal::UnbindingPaused), code::UNBINDING_PAUSED),
            (ServiceError::AdRefused(AdRefusal::InProgress), code::UPSTREAM_TIMEOUT),
            (ServiceError::AdRefused(AdRefusal::NotApplied), code::UPSTREAM_TIMEOUT),
            (ServiceError::AdRefused(AdRefusal::SearchIdReused), code::SYSTEM),
            (ServiceError::Upstream(PlatformError::Timeout), code::UPSTREAM_TIMEOUT),
            (ServiceError::Upstream(PlatformError::RateLimited { retry_after_s: 3 }), code::UPSTREAM_TIMEOUT),
            (ServiceError::Upstream(PlatformError::Malformed("x".into())), code::UPSTREAM_TIMEOUT),
            (ServiceError::Upstream(PlatformError::NotFound), code::META_REFUSED),
            (ServiceError::Rejected(subledger_domain::ledger::TransferRejection::InsufficientFunds), code::FUNDS_INSUFFICIENT),
            (ServiceError::Invalid { field: "page_size", reason: "from 1 to 500".into() }, code::PAGING),
        ];
        for (error, expected) in cases {
            let shown = error.to_string();
            assert_eq!(Refusal::from(error).code, expected, "{shown}");
        }
        let refused = Refusal::from(ServiceError::Upstream(PlatformError::Refused { code: 100, subcode: None, message: "(#100) Invalid parameter".into() }));
        assert_eq!((refused.code, refused.message.as_ref()), (code::META_REFUSED, "(#100) Invalid parameter"));
    }

    #[test]
    fn http_refusals_carry_1001() {
        let forbidden = Refusal::from(ServiceError::Forbidden { app: subledger_domain::access::app::ADS_MANAGE, code: "ads.manage" });
        assert_eq!((forbidden.status, forbidden.code), (StatusCode::FORBIDDEN, code::SYSTEM));
        assert!(forbidden.message.contains("ads.manage"), "{}", forbidden.message);
        assert_eq!(Refusal::from(ServiceError::RateLimited { retry_after_s: 0 }).retry_after_s, Some(1));
        let hidden = Refusal::from(ServiceError::Upstream(PlatformError::Unavailable("connect to 10.0.0.7:443 refused".into())));
        assert_eq!((hidden.code, hidden.message.as_ref()), (code::UPSTREAM_TIMEOUT, "the Facebook API is unavailable; retry later"));
        let hidden = Refusal::from(ServiceError::Conflict("SELECT * FROM secrets"));
        assert_eq!((hidden.status, hidden.code, hidden.message.as_ref()), (StatusCode::OK, code::SYSTEM, "system error"));
    }
}
