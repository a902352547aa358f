//! The telephony envelope `{"code", "msg", "data"}`, its error codes, and the
//! way this dialect writes money and quantities.
//!
//! Success is `code` 200 with `msg` 调用成功. A failure is the same envelope
//! with the failure's code, a Chinese message and `data: null`, sent with the
//! HTTP status equal to the code.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde::ser::SerializeMap;
use subledger_service::{Resource, ServiceError};

pub const SUCCESS_MSG: &str = "调用成功";

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    code: u16,
    msg: &'a str,
    data: T,
}

/// A successful answer carrying `data`.
pub fn success<T: Serialize>(data: T) -> Response {
    Json(Envelope { code: 200, msg: SUCCESS_MSG, data }).into_response()
}

/// Why a request failed; each is one code of the envelope.
#[derive(Debug)]
pub enum Failure {
    /// 400: a parameter is missing or malformed.
    BadRequest(String),
    /// 401: no valid tenant bearer token.
    Unauthenticated,
    /// 404: the `accountId` names no account of the tenant.
    AccountNotFound,
    /// 405: only GET is served.
    MethodNotAllowed,
    /// 500: the database failed (logged).
    Internal,
    /// 503: busy, shutting down, or past the deadline; nothing changed, retry.
    Unavailable(&'static str),
}

impl Failure {
    pub fn code(&self) -> u16 {
        match self {
            Failure::BadRequest(_) => 400,
            Failure::Unauthenticated => 401,
            Failure::AccountNotFound => 404,
            Failure::MethodNotAllowed => 405,
            Failure::Internal => 500,
            Failure::Unavailable(_) => 503,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::BadRequest(message) => message,
            Failure::Unauthenticated => "认证失败：请在Authorization请求头中携带有效的Bearer令牌",
            Failure::AccountNotFound => "账户不存在",
            Failure::MethodNotAllowed => "请求方法不支持，请使用GET",
            Failure::Internal => "服务器内部错误，请稍后重试",
            Failure::Unavailable(message) => message,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(Envelope { code, msg: self.message(), data: () })).into_response()
    }
}

impl From<ServiceError> for Failure {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound(Resource::Account) => Failure::AccountNotFound,
            ServiceError::Invalid { field, reason } => Failure::BadRequest(format!("参数错误：{field}: {reason}")),
            ServiceError::AmountTooLarge(what) => Failure::BadRequest(format!("金额超出上限：{what}")),
            ServiceError::Unavailable(_) => Failure::Unavailable("服务暂不可用，请稍后重试"),
            ServiceError::Busy(_) => Failure::Unavailable("服务繁忙，请稍后重试"),
            ServiceError::Storage(storage) if storage.is_retryable() => {
                tracing::warn!(error = %storage, "telephony request hit a transient storage failure");
                Failure::Unavailable("数据库繁忙，请稍后重试")
            }
            other => {
                tracing::error!(error = %other, "telephony request failed");
                Failure::Internal
            }
        }
    }
}

pub use crate::numbers::{Number, Yuan};

/// A JSON object whose keys come out in the given order (serde_json's own
/// map sorts them unless its `preserve_order` feature is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedObject<V>(pub Vec<(&'static str, V)>);

impl<V: Serialize> Serialize for OrderedObject<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_quantities_and_order() {
        #[derive(Serialize)]
        struct Line {
            amount: Yuan,
            number: Number,
        }
        assert_eq!(serde_json::to_string(&Line { amount: Yuan(23_322), number: Number("36".into()) }).unwrap(), r#"{"amount":233.22,"number":36}"#);
        assert_eq!(serde_json::to_string(&Yuan(0)).unwrap(), "0.00");
        assert_eq!(serde_json::to_string(&Yuan(-5)).unwrap(), "-0.05");
        let object = OrderedObject(vec![("单项外呼", Yuan(1)), ("互联网语音", Yuan(2)), ("双项外呼", Yuan(3))]);
        assert_eq!(serde_json::to_string(&object).unwrap(), r#"{"单项外呼":0.01,"互联网语音":0.02,"双项外呼":0.03}"#);
    }

    #[test]
    fn failures_use_the_envelope_and_their_status() {
        for (failure, code) in [(Failure::Unauthenticated, 401), (Failure::AccountNotFound, 404), (Failure::BadRequest("x".into()), 400), (Failure::Unavailable("y"), 503)] {
            assert_eq!(failure.code(), code);
            assert_eq!(failure.into_response().status().as_u16(), code);
        }
    }
}
