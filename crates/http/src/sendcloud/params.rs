//! SendCloud parameters: the query string and an `application/x-www-form-urlencoded`
//! body, merged, decoded strictly.

use percent_encoding::percent_decode;
use subledger_domain::text::{TextError, text_from_bytes};

/// Most parameters one request may carry.
pub const PARAMS_MAX: usize = 64;
/// Longest parameter value, in bytes after decoding.
pub const VALUE_BYTES_MAX: usize = 4096;

/// A request's parameters by name. Sorted, as the signature wants them.
///
/// A sorted `Vec` rather than a map: a request has a handful of parameters
/// (five for `transferIn`, at most `PARAMS_MAX`), and one small buffer
/// searched by halves costs less to fill than a B-tree's nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

/// Room for the parameters of every SendCloud call but `create`, without growing.
const PARAMS_TYPICAL: usize = 8;

/// Why parameters could not be read. All of them are a plain 400 in the dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Not valid UTF-8 after percent-decoding, or holding NUL (`subledger_domain::text`).
    #[error("a parameter {0}")]
    Text(#[from] TextError),
    #[error("parameter {0:?} is given more than once")]
    Repeated(String),
    #[error("too many parameters (at most {PARAMS_MAX})")]
    TooMany,
    #[error("parameter {0:?} is too long (at most {VALUE_BYTES_MAX} bytes)")]
    TooLong(String),
    #[error("a parameter has no name")]
    Unnamed,
}

impl Params {
    /// Adds every pair of an urlencoded string (`a=1&b=x%20y`).
    pub fn extend_urlencoded(&mut self, raw: &[u8]) -> Result<(), ParamsError> {
        for pair in raw.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode_component(name)?;
            if name.is_empty() {
                return Err(ParamsError::Unnamed);
            }
            let value = decode_component(value)?;
            if value.len() > VALUE_BYTES_MAX {
                return Err(ParamsError::TooLong(name));
            }
            if self.0.len() >= PARAMS_MAX {
                return Err(ParamsError::TooMany);
            }
            match self.position(&name) {
                // Two values for one name would make the signed string ambiguous.
                Ok(_) => return Err(ParamsError::Repeated(name)),
                Err(at) => {
                    if self.0.capacity() == 0 {
                        self.0.reserve_exact(PARAMS_TYPICAL);
                    }
                    self.0.insert(at, (name, value));
                }
            }
        }
        Ok(())
    }

    /// Where `name` is, or where it would go.
    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|at| self.0[at].1.as_str())
    }

    /// All parameters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets `name` to `value`, replacing any value it had.
    pub fn insert(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Ok(at) => self.0[at].1 = value.to_owned(),
            Err(at) => self.0.insert(at, (name.to_owned(), value.to_owned())),
        }
    }
}

/// `+` is a space in form encoding; then percent-decoding; then the text rule.
fn decode_component(raw: &[u8]) -> Result<String, ParamsError> {
    // Most components (names, digits, hex signatures, plain usernames) hold
    // nothing to decode: checked where they lie, they are copied once. This
    // runs ten times per `transferIn`, where decoding into fresh buffers cost
    // more than the signature's MD5.
    if !raw.iter().any(|b| matches!(*b, b'%' | b'+')) {
        return Ok(text_from_bytes(raw)?.to_owned());
    }
    let mut decoded = Vec::with_capacity(raw.len());
    // Each literal `+` is a space; `%2B` decodes to a `+` that stays one.
    for (i, piece) in raw.split(|b| *b == b'+').enumerate() {
        if i > 0 {
            decoded.push(b' ');
        }
        decoded.extend(percent_decode(piece));
    }
    Ok(text_from_bytes(&decoded)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Params, ParamsError> {
        let mut params = Params::default();
        params.extend_urlencoded(raw.as_bytes())?;
        Ok(params)
    }

    #[test]
    fn decodes_form_encoding() {
        let params = parse("appId=abc&companyName=%E5%85%AC%E5%8F%B8&note=a+b%2Bc&empty=&flag").unwrap();
        assert_eq!(params.get("companyName"), Some("公司"));
        assert_eq!(params.get("note"), Some("a b+c"));
        assert_eq!(params.get("empty"), Some(""));
        assert_eq!(params.get("flag"), Some(""));
        assert_eq!(params.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["appId", "companyName", "empty", "flag", "note"]);
        // A `%` that starts no escape stays as it is, next to a `+` too.
        let edges = parse("a=%+1&b=%2+&c=100%25&d=%e5%85%ac+%2b").unwrap();
        assert_eq!(edges.iter().collect::<Vec<_>>(), [("a", "% 1"), ("b", "%2 "), ("c", "100%"), ("d", "公 +")]);
    }

    #[test]
    fn insert_keeps_names_sorted_and_unique() {
        let mut params = parse("b=2&a=1").unwrap();
        params.insert("c", "3");
        params.insert("a", "one");
        assert_eq!(params.iter().collect::<Vec<_>>(), [("a", "one"), ("b", "2"), ("c", "3")]);
        assert_eq!(params.get("b"), Some("2"));
        assert_eq!(params.get("z"), None);
    }

    #[test]
    fn refuses_ambiguous_or_broken_input() {
        assert_eq!(parse("a=1&a=2"), Err(ParamsError::Repeated("a".into())));
        assert_eq!(parse("a=%FF%FE"), Err(ParamsError::Text(TextError::NotUtf8)));
        assert_eq!(parse("a=x%00y"), Err(ParamsError::Text(TextError::Nul)));
        assert_eq!(parse("a%00=1"), Err(ParamsError::Text(TextError::Nul)));
        assert_eq!(parse("=x"), Err(ParamsError::Unnamed));
        assert!(matches!(parse(&format!("a={}", "x".repeat(VALUE_BYTES_MAX + 1))), Err(ParamsError::TooLong(_))));
        let many: Vec<String> = (0..=PARAMS_MAX).map(|i| format!("p{i}=1")).collect();
        assert_eq!(parse(&many.join("&")), Err(ParamsError::TooMany));
    }
}
