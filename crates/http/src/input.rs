//! The text rule of `subledger_domain::text` (valid UTF-8, no NUL) at the
//! HTTP edge: the request URI here, for the dialects that read path and query
//! parameters with axum's extractors (native and telephony); SendCloud's
//! parameters in `sendcloud::params`; native JSON bodies in `native::ApiJson`.
//! Each dialect renders an [`InvalidText`] in its own format.

use std::borrow::Cow;
use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Uri;
use percent_encoding::percent_decode;
use subledger_domain::text::{TextError, text_from_bytes};

/// Which part of a request broke the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Query,
    Body,
}

/// A request whose text breaks the rule, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidText {
    pub part: Part,
    pub error: TextError,
}

impl fmt::Display for InvalidText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = match self.part {
            Part::Path => "the percent-decoded path",
            Part::Query => "the percent-decoded query string",
            Part::Body => "the body",
        };
        write!(f, "{part} {}", self.error)
    }
}

/// The path and the query string, each percent-decoded as a whole.
///
/// Decoding the whole at once judges exactly what decoding each parameter
/// would: the separators (`/`, `?`, `&`, `=`) are ASCII, so no character can
/// span two parameters, and `+` (a space in a form) is ASCII either way. The
/// query is checked here because axum's `Query` decodes lossily (an invalid
/// byte becomes U+FFFD), which would let a malformed query through as text.
pub fn check_uri(uri: &Uri) -> Result<(), InvalidText> {
    // Borrowed, not copied, when there is nothing to decode.
    let decoded = |raw: &str, part: Part| text_from_bytes(&Cow::from(percent_decode(raw.as_bytes()))).map(drop).map_err(|error| InvalidText { part, error });
    decoded(uri.path(), Part::Path)?;
    uri.query().map_or(Ok(()), |query| decoded(query, Part::Query))
}

/// How a dialect answers a request whose text breaks the rule.
pub type Refuse = fn(InvalidText) -> Response;

/// Middleware of a dialect's router: refuses a request whose URI breaks the
/// rule before any extractor reads it, in the dialect's format.
pub async fn refuse_invalid_uri(State(refuse): State<Refuse>, request: Request, next: Next) -> Response {
    match check_uri(request.uri()) {
        Ok(()) => next.run(request).await,
        Err(invalid) => refuse(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str) -> Result<(), InvalidText> {
        check_uri(&uri.parse::<Uri>().unwrap())
    }

    #[test]
    fn paths_and_queries_are_decoded_strictly() {
        assert_eq!(check("/v1/accounts/alice001?limit=2&username=%E5%85%AC+x"), Ok(()));
        assert_eq!(check("/v1/tenants/%E5%85%AC%E5%8F%B8"), Ok(()));
        assert_eq!(check("/v1/tenants/a%00b"), Err(InvalidText { part: Part::Path, error: TextError::Nul }));
        assert_eq!(check("/v1/tenants/%FF"), Err(InvalidText { part: Part::Path, error: TextError::NotUtf8 }));
        assert_eq!(check("/v1/accounts?username=%00"), Err(InvalidText { part: Part::Query, error: TextError::Nul }));
        assert_eq!(check("/v1/accounts?username=%ff"), Err(InvalidText { part: Part::Query, error: TextError::NotUtf8 }));
        assert_eq!(check("/v1/accounts?%00=1"), Err(InvalidText { part: Part::Query, error: TextError::Nul }), "names count too");
        assert_eq!(check("/v1/accounts?a=%E5%85&b=%AC"), Err(InvalidText { part: Part::Query, error: TextError::NotUtf8 }), "a character cut by a separator");
        assert_eq!(check("/v1/accounts?a=100%"), Ok(()), "a stray percent sign is itself");
    }

    #[test]
    fn the_message_names_the_part() {
        assert_eq!(InvalidText { part: Part::Query, error: TextError::Nul }.to_string(), "the percent-decoded query string holds a NUL character");
    }
}
