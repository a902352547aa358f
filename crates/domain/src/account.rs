//! The fields of a sub-account, each parsed once at the edge into a type that
//! can only hold a valid value. The rules are decided here and documented in
//! `docs/sendcloud.md`; every dialect that creates accounts shares them.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_newtype!(
    /// A sub-account's login name: 4–32 characters, an ASCII letter first, then
    /// ASCII letters, digits or `_`. Case is kept and significant.
    Username
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username is empty")]
    Empty,
    #[error("username must be 4-32 characters: a letter first, then letters, digits or underscores")]
    Format,
}

impl Username {
    pub const LENGTH_MIN: usize = 4;
    pub const LENGTH_MAX: usize = 32;

    pub fn parse(text: &str) -> Result<Self, UsernameError> {
        if text.is_empty() {
            return Err(UsernameError::Empty);
        }
        let bytes = text.as_bytes();
        let valid = (Self::LENGTH_MIN..=Self::LENGTH_MAX).contains(&bytes.len()) && bytes[0].is_ascii_alphabetic() && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if valid { Ok(Username(text.to_owned())) } else { Err(UsernameError::Format) }
    }
}

text_newtype!(
    /// A mainland China mobile number: 11 digits, `1`, then `3`–`9`, then nine digits.
    Phone
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("phone must be a mainland China mobile number of 11 digits starting with 13-19")]
pub struct PhoneError;

impl Phone {
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]) && bytes.iter().all(u8::is_ascii_digit);
        if valid { Ok(Phone(text.to_owned())) } else { Err(PhoneError) }
    }
}

text_newtype!(
    /// An e-mail address: one `@`, a non-empty local part, a domain with a dot, no blanks, ≤ 254 bytes.
    Email
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("e-mail must look like name@example.com")]
pub struct EmailError;

impl Email {
    pub const LENGTH_MAX: usize = 254;

    pub fn parse(text: &str) -> Result<Self, EmailError> {
        if text.len() > Self::LENGTH_MAX || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError);
        }
        let Some((local, domain)) = text.split_once('@') else { return Err(EmailError) };
        let domain_ok = !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-'));
        if local.is_empty() || !domain_ok {
            return Err(EmailError);
        }
        Ok(Email(text.to_owned()))
    }
}

text_newtype!(
    /// A company's name: 1–100 characters after trimming, no control characters.
    CompanyName
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompanyNameError {
    #[error("name is empty")]
    Empty,
    #[error("name must be at most 100 characters without control characters")]
    Invalid,
}

impl CompanyName {
    pub const CHARS_MAX: usize = 100;

    pub fn parse(text: &str) -> Result<Self, CompanyNameError> {
        parse_display_name(text, Self::CHARS_MAX).map(CompanyName)
    }
}

text_newtype!(
    /// A tenant's (reseller's) display name: same rule as [`CompanyName`].
    TenantName
);

impl TenantName {
    pub fn parse(text: &str) -> Result<Self, CompanyNameError> {
        parse_display_name(text, CompanyName::CHARS_MAX).map(TenantName)
    }
}

/// A name for people to read: trimmed, 1 to `chars_max` characters, no control characters.
/// Company and tenant names, and the names and units of products.
pub fn parse_display_name(text: &str, chars_max: usize) -> Result<String, CompanyNameError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CompanyNameError::Empty);
    }
    if text.chars().count() > chars_max || text.chars().any(char::is_control) {
        return Err(CompanyNameError::Invalid);
    }
    Ok(text.to_owned())
}

text_newtype!(
    /// A company web address: `http://` or `https://`, then a host name with at
    /// least one dot (or an IPv4 address), an optional port and path; ≤ 255 bytes.
    CompanyUrl
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompanyUrlError {
    #[error("company URL is empty")]
    Empty,
    #[error("company URL must be an http(s) address such as https://www.example.com")]
    Invalid,
}

impl CompanyUrl {
    pub const LENGTH_MAX: usize = 255;

    pub fn parse(text: &str) -> Result<Self, CompanyUrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CompanyUrlError::Empty);
        }
        if text.len() > Self::LENGTH_MAX || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(CompanyUrlError::Invalid);
        }
        let lower = text.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")).ok_or(CompanyUrlError::Invalid)?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.contains('@') {
            // user-info in a company address is a phishing pattern, not a website.
            return Err(CompanyUrlError::Invalid);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if let Some(port) = port
            && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u32>().map_or(true, |p| p == 0 || p > 65_535))
        {
            return Err(CompanyUrlError::Invalid);
        }
        let labels: Vec<&str> = host.split('.').collect();
        let host_ok = labels.len() >= 2
            && host.len() <= 253
            && labels.iter().all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-') && !label.ends_with('-') && label.chars().all(|c| c.is_alphanumeric() || c == '-'));
        if !host_ok {
            return Err(CompanyUrlError::Invalid);
        }
        Ok(CompanyUrl(text.to_owned()))
    }
}

/// A text a person typed that may span lines (a note, a notice's content):
/// trimmed, 1 to `chars_max` characters, no control characters but tabs
/// and line breaks.
pub fn parse_free_text(text: &str, chars_max: usize) -> Result<String, CompanyNameError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(CompanyNameError::Empty);
    }
    if text.chars().count() > chars_max || text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(CompanyNameError::Invalid);
    }
    Ok(text.to_owned())
}

/// Why a bounded text field (a seat's field, a role's name, a notice) was
/// refused: empty, or too long / holding control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextFieldError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} must be at most {1} characters without control characters")]
    Invalid(&'static str, usize),
}

/// A text type named `$field` in errors: 1 to `CHARS_MAX` characters after
/// trimming, checked by `$rule` ([`parse_display_name`] or [`parse_free_text`]).
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, $field:literal, $chars_max:expr, $rule:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const CHARS_MAX: usize = $chars_max;

            pub fn parse(text: &str) -> Result<$name, $crate::account::TextFieldError> {
                $rule(text, Self::CHARS_MAX).map($name).map_err(|e| match e {
                    $crate::account::CompanyNameError::Empty => $crate::account::TextFieldError::Empty($field),
                    $crate::account::CompanyNameError::Invalid => $crate::account::TextFieldError::Invalid($field, Self::CHARS_MAX),
                })
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use bounded_text;

bounded_text!(
    /// The employee behind a seat (UUCall `name`): 1–50 characters.
    PersonName, "person_name", 50, parse_display_name
);
bounded_text!(
    /// A seat's job number (工号): 1–32 characters.
    JobNumber, "job_number", 32, parse_display_name
);
bounded_text!(
    /// A seat's department: 1–100 characters.
    Department, "department", 100, parse_display_name
);
bounded_text!(
    /// A note on a seat: 1–500 characters, lines allowed.
    SeatNote, "note", 500, parse_free_text
);

/// A seat's bound extension (分机, `bind_ext`): 1 to 12 digits, as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Extension(i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("extension must be a whole number from 1 to 999999999999")]
pub struct ExtensionError;

impl Extension {
    pub const MAX: i64 = 999_999_999_999;

    pub fn new(value: i64) -> Result<Extension, ExtensionError> {
        if (1..=Self::MAX).contains(&value) { Ok(Extension(value)) } else { Err(ExtensionError) }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A password as typed, before hashing. Never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password is empty")]
    Empty,
    #[error("password must be 6-32 printable ASCII characters with at least one letter and one digit")]
    Weak,
}

impl Password {
    pub const LENGTH_MIN: usize = 6;
    pub const LENGTH_MAX: usize = 32;

    pub fn parse(text: &str) -> Result<Self, PasswordError> {
        if text.is_empty() {
            return Err(PasswordError::Empty);
        }
        let bytes = text.as_bytes();
        let valid = (Self::LENGTH_MIN..=Self::LENGTH_MAX).contains(&bytes.len())
            && bytes.iter().all(|b| b.is_ascii_graphic())
            && bytes.iter().any(u8::is_ascii_alphabetic)
            && bytes.iter().any(u8::is_ascii_digit);
        if valid { Ok(Password(text.to_owned())) } else { Err(PasswordError::Weak) }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// SendCloud's `userType`: which product the sub-account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    /// `0`: a SendCloud (e-mail) account; gets an API user and key.
    #[serde(rename = "sendcloud")]
    SendCloud,
    /// `1`: an iFaxin (爱发信, SMS) account.
    #[serde(rename = "ifaxin")]
    IFaxin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("user type must be 0 (SendCloud) or 1 (iFaxin)")]
pub struct UserTypeError;

impl UserType {
    pub fn code(self) -> i64 {
        match self {
            UserType::SendCloud => 0,
            UserType::IFaxin => 1,
        }
    }

    pub fn from_code(code: i64) -> Result<Self, UserTypeError> {
        match code {
            0 => Ok(UserType::SendCloud),
            1 => Ok(UserType::IFaxin),
            _ => Err(UserTypeError),
        }
    }

    pub fn parse(text: &str) -> Result<Self, UserTypeError> {
        match text {
            "0" => Ok(UserType::SendCloud),
            "1" => Ok(UserType::IFaxin),
            _ => Err(UserTypeError),
        }
    }
}

/// Whether an account may be used. A frozen account keeps its money and can
/// still be funded; it cannot consume services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Frozen,
}

impl AccountStatus {
    /// SendCloud's `status`: `1` normal, `-1` frozen.
    pub fn code(self) -> i64 {
        match self {
            AccountStatus::Active => 1,
            AccountStatus::Frozen => -1,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(AccountStatus::Active),
            -1 => Some(AccountStatus::Frozen),
            _ => None,
        }
    }
}

/// Whose money an account's charges draw on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Funding {
    /// Its own wallets (SendCloud sub-accounts, telephony developer accounts).
    #[default]
    Own,
    /// Its tenant's wallets (UUCall seats: billed per seat, paid by the enterprise).
    Tenant,
}

impl Funding {
    pub fn as_str(self) -> &'static str {
        match self {
            Funding::Own => "own",
            Funding::Tenant => "tenant",
        }
    }

    pub fn parse(text: &str) -> Option<Funding> {
        match text {
            "own" => Some(Funding::Own),
            "tenant" => Some(Funding::Tenant),
            _ => None,
        }
    }
}

/// Whether a sub-user may log in and be charged, beside [`AccountStatus`]
/// (frozen is a money-side state; this is the seat's lifecycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessState {
    #[default]
    Enabled,
    /// Cannot log in; its money and history stay.
    Disabled,
    /// Cannot log in or be charged; kept for its ledger history, never deleted.
    Cancelled,
}

impl AccessState {
    pub fn code(self) -> i64 {
        match self {
            AccessState::Enabled => 1,
            AccessState::Disabled => 2,
            AccessState::Cancelled => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<AccessState> {
        match code {
            1 => Some(AccessState::Enabled),
            2 => Some(AccessState::Disabled),
            3 => Some(AccessState::Cancelled),
            _ => None,
        }
    }
}

/// An account's daily request quota: how many requests it may make in one
/// calendar day of its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DailyQuota(i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quota must be a whole number from 0 to 1000000000")]
pub struct DailyQuotaError;

impl DailyQuota {
    pub const MAX: i64 = 1_000_000_000;

    pub fn new(value: i64) -> Result<Self, DailyQuotaError> {
        if (0..=Self::MAX).contains(&value) { Ok(DailyQuota(value)) } else { Err(DailyQuotaError) }
    }

    pub fn parse(text: &str) -> Result<Self, DailyQuotaError> {
        if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DailyQuotaError);
        }
        Self::new(text.parse().map_err(|_| DailyQuotaError)?)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_rule() {
        for good in ["ctse", "wangbowen123", "yuanabao_test_27", "GuokaiNew", "sdfwevsdf", "a234567890123456789012345678901b"] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        for bad in ["abc", "1abc", "_abc", "ab cd", "ab-cd", "用户名称", "a2345678901234567890123456789012x", "abc'--"] {
            assert_eq!(Username::parse(bad), Err(UsernameError::Format), "{bad}");
        }
    }

    #[test]
    fn phones_are_mainland_mobile_numbers() {
        assert!(Phone::parse("15172212992").is_ok());
        assert!(Phone::parse("13307766289").is_ok());
        for bad in ["", "184040713", "12345678901", "1517221299a", "+8615172212992", "151722129921"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_letters_and_digits() {
        assert!(Password::parse("321Abc").is_ok());
        assert_eq!(Password::parse(""), Err(PasswordError::Empty));
        for bad in ["12345", "abcdef", "123456", "abc 123", "密码abc123", &"a1".repeat(17)] {
            assert_eq!(Password::parse(bad), Err(PasswordError::Weak), "{bad}");
        }
        assert_eq!(format!("{:?}", Password::parse("321Abc").unwrap()), "Password(***)");
    }

    #[test]
    fn company_urls_must_be_http_addresses() {
        for good in ["https://www.baidu.com", "http://example.cn/about?x=1", "https://例子.中国", "https://a.b:8443/"] {
            assert!(CompanyUrl::parse(good).is_ok(), "{good}");
        }
        assert_eq!(CompanyUrl::parse("  "), Err(CompanyUrlError::Empty));
        for bad in ["www.baidu.com", "ftp://x.com", "https://localhost", "https://x..com", "https://a.com:0", "https://u@evil.com", "javascript:alert(1)", "https://-a.com"] {
            assert_eq!(CompanyUrl::parse(bad), Err(CompanyUrlError::Invalid), "{bad}");
        }
    }

    #[test]
    fn seat_fields_have_limits() {
        assert_eq!(PersonName::parse("  张三 ").unwrap().as_str(), "张三");
        assert_eq!(PersonName::parse(" "), Err(TextFieldError::Empty("person_name")));
        assert_eq!(PersonName::parse(&"名".repeat(51)), Err(TextFieldError::Invalid("person_name", 50)));
        assert!(PersonName::parse(&"名".repeat(50)).is_ok());
        assert!(JobNumber::parse("A\u{7}1").is_err());
        assert_eq!(SeatNote::parse("line one\nline two").unwrap().as_str(), "line one\nline two");
        assert!(SeatNote::parse("bell\u{7}").is_err());
        assert!(Department::parse(&"d".repeat(101)).is_err());
        assert_eq!(Extension::new(8001).map(Extension::get), Ok(8001));
        for bad in [0, -1, Extension::MAX + 1] {
            assert_eq!(Extension::new(bad), Err(ExtensionError), "{bad}");
        }
    }

    #[test]
    fn emails_and_quotas() {
        assert!(Email::parse("ops@example.com").is_ok());
        for bad in ["", "ops", "ops@", "@example.com", "ops@example", "o ps@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DailyQuota::parse("2500").map(DailyQuota::get), Ok(2500));
        for bad in ["", "-1", "1.5", "1000000001", "99999999999999999999", "2,500"] {
            assert!(DailyQuota::parse(bad).is_err(), "{bad}");
        }
    }
}
