//! The one rule every piece of text from outside obeys, whatever carries it
//! (a URI, a SendCloud form, a JSON body, a file the CLI imports): it is valid
//! UTF-8 and it holds no NUL character.
//!
//! Why NUL: PostgreSQL cannot store it in `text` and fails the statement, so
//! an input holding one would surface as a storage failure (HTTP 500, a
//! SendCloud failure code logged as a database error, a usage batch refused
//! whole), while SQLite stores it and answers otherwise: the same request
//! would get different answers on the two backends. Refused at the edge, it is
//! a malformed parameter in every dialect, on both.
//!
//! Why only NUL here: other control characters are refused field by field
//! where the field is an identifier or a name (usernames, product codes and
//! names, usage event ids and attribute names, company and tenant names).
//! Free text such as a memo, a note or an attribute value may hold tabs and
//! line breaks.

/// How a text breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is not valid UTF-8")]
    NotUtf8,
    #[error("holds a NUL character")]
    Nul,
}

/// Checks text that is already a `str` (so valid UTF-8): no NUL.
pub fn check_text(text: &str) -> Result<(), TextError> {
    // `contains` on bytes is a `memchr`, and UTF-8 never uses a 0 byte inside a longer character.
    if text.as_bytes().contains(&0) { Err(TextError::Nul) } else { Ok(()) }
}

/// Decoded bytes (a percent-decoded URI or form value, a line of a file) as text.
pub fn text_from_bytes(bytes: &[u8]) -> Result<&str, TextError> {
    let text = std::str::from_utf8(bytes).map_err(|_| TextError::NotUtf8)?;
    check_text(text)?;
    Ok(text)
}

/// Checks JSON text before it is parsed: no string in it (member names
/// included) decodes to NUL. UTF-8 is the parser's to check: JSON text is
/// UTF-8 (RFC 8259), and serde_json refuses anything else where it decodes a
/// string and everywhere outside strings.
///
/// Valid JSON cannot hold a raw NUL byte (parsers refuse control characters
/// inside strings and anywhere else), so the only way to write NUL is the
/// escape `\u0000`. The scan finds it without decoding anything: it looks for
/// the text `u0000` (rare, and found with SIMD) and counts the backslashes
/// just before it. An odd number makes it an escape, since backslashes pair
/// up as escaped backslashes: `\\u0000` is a backslash, then the text `u0000`.
/// The backslash runs before different matches do not overlap, so the whole
/// scan is linear. It is exact for valid JSON; invalid JSON is left to the
/// parser to refuse.
pub fn check_json_text(json: &[u8]) -> Result<(), TextError> {
    for at in memchr::memmem::find_iter(json, b"u0000") {
        let backslashes = json[..at].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 1 {
            return Err(TextError::Nul);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_utf8_without_nul() {
        assert_eq!(text_from_bytes("公司 a\tb\n".as_bytes()), Ok("公司 a\tb\n"));
        assert_eq!(text_from_bytes(b"a\0b"), Err(TextError::Nul));
        assert_eq!(text_from_bytes(b"\0"), Err(TextError::Nul));
        assert_eq!(text_from_bytes(b"a\xFFb"), Err(TextError::NotUtf8));
        assert_eq!(text_from_bytes(b"\xE5\x85"), Err(TextError::NotUtf8), "a character cut short");
        assert_eq!(check_text(""), Ok(()));
        assert_eq!(check_text("x\u{0}"), Err(TextError::Nul));
    }

    #[test]
    fn json_nul_escapes_are_found_exactly() {
        for clean in [r#"{"a":"b"}"#, r#"{"a":"\\u0000"}"#, r#"{"a":"\\\\u0000"}"#, r#"{"a":"\u0001\n\"u0000\""}"#, r#"{"a":"\u0030\u00a0"}"#, r#"{"a":"\u4e2d"}"#, r#""\\""#, ""] {
            assert_eq!(check_json_text(clean.as_bytes()), Ok(()), "{clean}");
        }
        for dirty in [r#"{"a":"\u0000"}"#, r#"{"\u0000":1}"#, r#"{"a":"x\\\u0000"}"#, r#"["ok","\n\u0000"]"#, r#"{"a":"\u0000"#] {
            assert_eq!(check_json_text(dirty.as_bytes()), Err(TextError::Nul), "{dirty}");
        }
        // UTF-8 is the parser's to refuse.
        assert!(serde_json::from_slice::<serde_json::Value>(b"{\"a\":[{\"b\":\"\xFF\"}]}").is_err());
    }

    #[test]
    fn the_json_scan_agrees_with_the_parser() {
        // Every string of backslashes, `u`, `0` and `x` up to seven characters:
        // the scan says NUL exactly when the parsed string holds one.
        let alphabet = [b'\\', b'u', b'0', b'x'];
        for length in 0..=7u32 {
            for mut n in 0..alphabet.len().pow(length) {
                let mut body = Vec::new();
                for _ in 0..length {
                    body.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let json = [b"\"".as_slice(), &body, b"\""].concat();
                let Ok(parsed) = serde_json::from_slice::<String>(&json) else { continue };
                let expected = if parsed.contains('\0') { Err(TextError::Nul) } else { Ok(()) };
                assert_eq!(check_json_text(&json), expected, "{}", String::from_utf8_lossy(&json));
            }
        }
    }
}
