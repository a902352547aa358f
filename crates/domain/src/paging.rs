//! Bounded pages: every listing has a limit.

/// An offset page of at most `limit` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("offset must be a whole number of at least 0")]
    Offset,
    #[error("page size must be a whole number from 0 to {max}")]
    Limit { max: i64 },
}

impl Page {
    /// Largest offset accepted: deeper paging is a scan, not a page.
    pub const OFFSET_MAX: i64 = 10_000_000;

    pub fn new(offset: i64, limit: i64, limit_max: i64) -> Result<Page, PageError> {
        if !(0..=Self::OFFSET_MAX).contains(&offset) {
            return Err(PageError::Offset);
        }
        if !(0..=limit_max).contains(&limit) {
            return Err(PageError::Limit { max: limit_max });
        }
        Ok(Page { offset, limit })
    }

    /// Parses optional textual `offset` and `limit` parameters, with defaults.
    pub fn parse(offset: Option<&str>, limit: Option<&str>, limit_default: i64, limit_max: i64) -> Result<Page, PageError> {
        let offset = match offset {
            None => 0,
            Some(text) => parse_whole(text).ok_or(PageError::Offset)?,
        };
        let limit = match limit {
            None => limit_default,
            Some(text) => parse_whole(text).ok_or(PageError::Limit { max: limit_max })?,
        };
        Page::new(offset, limit, limit_max)
    }
}

fn parse_whole(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_defaults_and_limits() {
        assert_eq!(Page::parse(None, None, 10, 200), Ok(Page { offset: 0, limit: 10 }));
        assert_eq!(Page::parse(Some("5"), Some("0"), 10, 200), Ok(Page { offset: 5, limit: 0 }));
        assert_eq!(Page::parse(None, Some("201"), 10, 200), Err(PageError::Limit { max: 200 }));
        assert_eq!(Page::parse(None, Some("-1"), 10, 200), Err(PageError::Limit { max: 200 }));
        assert_eq!(Page::parse(Some("-1"), None, 10, 200), Err(PageError::Offset));
        assert_eq!(Page::parse(Some("x"), None, 10, 200), Err(PageError::Offset));
        assert_eq!(Page::parse(None, Some("99999999999999999"), 10, 200), Err(PageError::Limit { max: 200 }));
    }
}
