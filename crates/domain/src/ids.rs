//! Typed identifiers, so a wallet id can never be passed where an account id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! integer_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

integer_id!(
    /// Storage key of a tenant (the reseller). Public APIs show [`TenantPublicId`] instead.
    TenantId
);
integer_id!(
    /// Storage key of a sub-account of a tenant.
    AccountId
);
integer_id!(
    /// Storage key of a wallet; also what ledger entries hang from.
    WalletId
);

/// The opaque tenant identifier shown to people and scripts (`tn_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantPublicId(pub String);

impl fmt::Display for TenantPublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifier of a ledger transfer: a UUID (version 7, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransferId(pub u128);

impl fmt::Display for TransferId {
    /// The canonical hyphenated UUID form, which is also how it is stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl std::str::FromStr for TransferId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return Err(());
        }
        u128::from_str_radix(&hex, 16).map(TransferId).map_err(|_| ())
    }
}

impl Serialize for TransferId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_id_round_trips_through_its_text_form() {
        let id = TransferId(0x0190_1234_5678_7abc_8def_0123_4567_89ab);
        let text = id.to_string();
        assert_eq!(text, "01901234-5678-7abc-8def-0123456789ab");
        assert_eq!(text.parse::<TransferId>(), Ok(id));
    }
}
