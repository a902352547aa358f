//! The sandbox's object ids: 16-digit strings, like Meta's, that encode what
//! they name (the tenant, the request, the account's place in it) under a
//! keyed permutation. They look random, differ with the seed, and decode
//! back without any lookup: an id of another tenant, or of nothing, is
//! recognised as such at once.

use super::draw::{about, mix};

/// Tenant ids the sandbox serves: below 2^30.
pub(crate) const TENANT_BITS: u32 = 30;
/// Requests per tenant: below 2^20.
pub(crate) const REQUEST_BITS: u32 = 20;
/// Ad accounts per request: below 2^2.
const SLOT_BITS: u32 = 2;
/// Every id is this plus a value of at most 52 bits: 16 digits.
const ID_BASE: u64 = 1_000_000_000_000_000;
const ID_DIGITS: usize = 16;
const ROUNDS: u64 = 4;

/// The kinds of ids, each with a permutation of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// Meta's `AdAccountCreationRequest` id: tenant, request.
    Request = 1,
    /// The reseller's form id (`oe_request_id`): tenant, request.
    OeRequest = 2,
    /// An ad account: tenant, request, slot.
    Account = 3,
    /// A pixel the tenant's sandbox owns: tenant, index.
    Pixel = 4,
}

impl IdKind {
    fn bits(self) -> u32 {
        match self {
            IdKind::Account => TENANT_BITS + REQUEST_BITS + SLOT_BITS,
            _ => TENANT_BITS + REQUEST_BITS,
        }
    }
}

/// A balanced Feistel network over `bits` bits (even), keyed by the seed and
/// the kind: a bijection of `0..2^bits`.
struct Permutation {
    key: u64,
    half_bits: u32,
}

impl Permutation {
    fn new(seed: u64, kind: IdKind) -> Permutation {
        Permutation { key: mix(seed ^ mix(about::ID_KEY << 8 | kind as u64)), half_bits: kind.bits() / 2 }
    }

    fn mask(&self) -> u64 {
        (1 << self.half_bits) - 1
    }

    fn round(&self, round: u64, half: u64) -> u64 {
        mix(self.key ^ (round << 58) ^ half) & self.mask()
    }

    fn forward(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> self.half_bits, value & self.mask());
        for round in 0..ROUNDS {
            (left, right) = (right, left ^ self.round(round, right));
        }
        (left << self.half_bits) | right
    }

    fn backward(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> self.half_bits, value & self.mask());
        for round in (0..ROUNDS).rev() {
            (left, right) = (right ^ self.round(round, left), left);
        }
        (left << self.half_bits) | right
    }
}

fn encode(seed: u64, kind: IdKind, value: u64) -> String {
    (ID_BASE + Permutation::new(seed, kind).forward(value)).to_string()
}

fn decode(seed: u64, kind: IdKind, text: &str) -> Option<u64> {
    if text.len() != ID_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = text.parse::<u64>().ok()?.checked_sub(ID_BASE)?;
    (value >> kind.bits() == 0).then(|| Permutation::new(seed, kind).backward(value))
}

/// Whether a tenant id fits the ids' space.
pub(crate) fn tenant_fits(tenant_id: i64) -> bool {
    (0..1 << TENANT_BITS).contains(&tenant_id)
}

fn request_value(tenant_id: i64, request: u32) -> u64 {
    (tenant_id as u64) << REQUEST_BITS | u64::from(request)
}

pub(crate) fn request_id(seed: u64, tenant_id: i64, request: u32) -> String {
    encode(seed, IdKind::Request, request_value(tenant_id, request))
}

pub(crate) fn oe_request_id(seed: u64, tenant_id: i64, request: u32) -> String {
    encode(seed, IdKind::OeRequest, request_value(tenant_id, request))
}

pub(crate) fn account_id(seed: u64, tenant_id: i64, request: u32, slot: u32) -> String {
    encode(seed, IdKind::Account, request_value(tenant_id, request) << SLOT_BITS | u64::from(slot))
}

/// The (tenant, request, slot) an account id names, if it is one.
pub(crate) fn parse_account_id(seed: u64, text: &str) -> Option<(i64, u32, u32)> {
    let value = decode(seed, IdKind::Account, text)?;
    let slot = (value & ((1 << SLOT_BITS) - 1)) as u32;
    let request = ((value >> SLOT_BITS) & ((1 << REQUEST_BITS) - 1)) as u32;
    Some(((value >> (SLOT_BITS + REQUEST_BITS)) as i64, request, slot))
}

pub(crate) fn pixel_id(seed: u64, tenant_id: i64, index: u32) -> String {
    encode(seed, IdKind::Pixel, request_value(tenant_id, index))
}

/// The (tenant, index) a pixel id names, if it is one.
pub(crate) fn parse_pixel_id(seed: u64, text: &str) -> Option<(i64, u32)> {
    let value = decode(seed, IdKind::Pixel, text)?;
    Some(((value >> REQUEST_BITS) as i64, (value & ((1 << REQUEST_BITS) - 1)) as u32))
}

/// An id that names nothing the sandbox decodes (pages, apps, users): 16
/// digits from a draw.
pub(crate) fn plain_id(draw: u64) -> String {
    (ID_BASE + draw % (9 * ID_BASE)).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn account_ids_decode_to_what_they_encode(seed: u64, tenant in 0i64..1 << TENANT_BITS, request in 0u32..1 << REQUEST_BITS, slot in 0u32..4) {
            let id = account_id(seed, tenant, request, slot);
            prop_assert_eq!(id.len(), 16);
            prop_assert_eq!(parse_account_id(seed, &id), Some((tenant, request, slot)));
            // Another seed reads it as something else (or nothing).
            prop_assert_ne!(parse_account_id(seed ^ 1, &id), Some((tenant, request, slot)));
        }

        #[test]
        fn pixel_and_request_ids_round_trip(seed: u64, tenant in 0i64..1 << TENANT_BITS, index in 0u32..1 << REQUEST_BITS) {
            prop_assert_eq!(parse_pixel_id(seed, &pixel_id(seed, tenant, index)), Some((tenant, index)));
            prop_assert_ne!(request_id(seed, tenant, index), oe_request_id(seed, tenant, index));
        }
    }

    #[test]
    fn malformed_ids_name_nothing() {
        for text in ["", "act_1000000000000000", "123", "99999999999999999", "9999999999999999", "0999999999999999", "100000000000000a"] {
            assert_eq!(parse_account_id(42, text), None, "{text}");
        }
    }
}
