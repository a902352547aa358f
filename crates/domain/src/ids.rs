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
integer_id!(
    /// Storage key of a role of a tenant.
    RoleId
);
integer_id!(
    /// Storage key of a notice of a tenant.
    NoticeId
);
integer_id!(
    /// Storage key of a time card (时长卡) of a tenant.
    TimeCardId
);
integer_id!(
    /// Storage key of an account's subscription to a monthly item.
    SubscriptionId
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

integer_id!(
    /// Identifier of a ledger transfer, increasing with the order of commits
    /// (on one database process; across PostgreSQL clients, a sequence).
    TransferId
);

impl std::str::FromStr for TransferId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        s.parse().map(TransferId).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_id_round_trips_through_its_text_form() {
        let id = TransferId(1_234_567);
        assert_eq!(id.to_string(), "1234567");
        assert_eq!("1234567".parse::<TransferId>(), Ok(id));
        for bad in ["", "-1", "1e3", "abc", "99999999999999999999"] {
            assert!(bad.parse::<TransferId>().is_err(), "{bad}");
        }
    }
}
