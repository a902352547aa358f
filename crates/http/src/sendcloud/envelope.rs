//! The SendCloud envelope `{message, result, info, statusCode}` and its return
//! codes. Like the vendor, every answer is HTTP 200; the outcome is in
//! `statusCode`, with the spec's Chinese message.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

/// The return codes of the spec's table (接口返回码).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Ok = 200,
    Failed = 400,
    AppIdMissing = 401,
    AppIdUnknown = 402,
    SignatureParam = 403,
    SignatureWrong = 404,
    Email = 405,
    Phone = 406,
    UsernameMissing = 407,
    CompanyNameMissing = 408,
    CompanyUrlMissing = 409,
    PasswordMissing = 410,
    PasswordRule = 413,
    CompanyUrlInvalid = 414,
    UserType = 415,
    BalanceNegative = 416,
    AccountLimit = 417,
    UsernameTaken = 418,
    PhoneTaken = 419,
    BalanceInsufficient = 420,
    MoneyMalformed = 421,
    MoneyOutOfRange = 422,
    UsernameUnknown = 423,
    PageSize = 424,
    Timestamp = 425,
    UsernameFormat = 426,
    SaveFailed = 101,
    UpdateFailed = 102,
    DeleteFailed = 103,
    TransferFailed = 104,
}

impl Code {
    pub fn number(self) -> u16 {
        self as u16
    }

    pub fn message(self) -> &'static str {
        match self {
            Code::Ok => "请求成功",
            Code::Failed => "请求失败",
            Code::AppIdMissing => "AppId不能为空",
            Code::AppIdUnknown => "找不到该appId",
            Code::SignatureParam => "签名参数错误",
            Code::SignatureWrong => "签名错误",
            Code::Email => "邮箱不能为空且确保格式正确",
            Code::Phone => "手机号不能为空且保证格式正确",
            Code::UsernameMissing => "用户名不能为空",
            Code::CompanyNameMissing => "公司名称不能为空",
            Code::CompanyUrlMissing => "公司网址不能为空",
            Code::PasswordMissing => "密码不能为空",
            Code::PasswordRule => "密码设置不符合规则",
            Code::CompanyUrlInvalid => "公司网址无效",
            Code::UserType => "账户类型错误",
            Code::BalanceNegative => "余额为负,请充值后再来",
            Code::AccountLimit => "关联子账户超出限制",
            Code::UsernameTaken => "用户名已存在",
            Code::PhoneTaken => "手机号已存在",
            Code::BalanceInsufficient => "余额不足分账失败",
            Code::MoneyMalformed => "分账金额错误",
            Code::MoneyOutOfRange => "分账金额不正确",
            Code::UsernameUnknown => "找不到该用户名",
            Code::PageSize => "查询条数限制",
            Code::Timestamp => "时间戳无效",
            Code::UsernameFormat => "用户名格式不正确",
            Code::SaveFailed => "保存失败",
            Code::UpdateFailed => "更新失败",
            Code::DeleteFailed => "删除失败",
            Code::TransferFailed => "分账失败",
        }
    }
}

#[derive(Serialize)]
struct Envelope<T: Serialize> {
    message: &'static str,
    result: bool,
    info: T,
    #[serde(rename = "statusCode")]
    status_code: u16,
}

/// A successful answer with `info`.
pub fn success<T: Serialize>(info: T) -> Response {
    json_answer(&Envelope { message: Code::Ok.message(), result: true, info, status_code: Code::Ok.number() })
}

/// Room for a whole envelope of the small answers (`transferIn`, `quota`,
/// refusals: 100–200 bytes), so that most are written without growing.
const ENVELOPE_BYTES_TYPICAL: usize = 256;

/// An envelope as an `application/json` answer. Written into a `Vec`:
/// `axum::Json` writes through a `BytesMut` writer, one call per JSON token,
/// which cost more than the rest of rendering a `transferIn` answer.
fn json_answer<T: Serialize>(envelope: &Envelope<T>) -> Response {
    let mut body = Vec::with_capacity(ENVELOPE_BYTES_TYPICAL);
    match serde_json::to_writer(&mut body, envelope) {
        Ok(()) => ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response(),
        // Only a broken `Serialize` of our own gets here, as with `axum::Json`.
        Err(error) => {
            tracing::error!(%error, "a SendCloud answer could not be written as JSON");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A refusal. The vendor answers HTTP 200 with the code in the body; `info`
/// is an empty object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub Code);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = self.0;
        json_answer(&Envelope { message: code.message(), result: false, info: serde_json::Map::new(), status_code: code.number() })
    }
}

impl From<Code> for Refusal {
    fn from(code: Code) -> Self {
        Refusal(code)
    }
}

pub use crate::numbers::Yuan;
