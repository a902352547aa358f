//! Exact decimals written as JSON numbers, as the vendors' wire formats
//! show money and quantities (`521.00`, `1.5`), never through a float.

use serde::Serialize;
use serde_json::value::RawValue;

/// Yuan with exactly two decimals, written as a JSON number (`521.00`, `0.00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuan(pub i64);

impl Serialize for Yuan {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        raw_number(subledger_domain::money::format_minor(self.0), serializer)
    }
}

/// A decimal already formatted (`36`, `1.5`, `135.8948`), written as a JSON number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(pub String);

impl Serialize for Number {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        raw_number(self.0.clone(), serializer)
    }
}

fn raw_number<S: serde::Serializer>(text: String, serializer: S) -> Result<S::Ok, S::Error> {
    RawValue::from_string(text).map_err(serde::ser::Error::custom)?.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_is_a_number_with_two_decimals() {
        #[derive(Serialize)]
        struct Line {
            balance: Yuan,
            count: Number,
        }
        assert_eq!(serde_json::to_string(&Line { balance: Yuan(52_100), count: Number("1.5".into()) }).unwrap(), r#"{"balance":521.00,"count":1.5}"#);
        assert_eq!(serde_json::to_string(&Line { balance: Yuan(-5), count: Number("36".into()) }).unwrap(), r#"{"balance":-0.05,"count":36}"#);
    }
}
