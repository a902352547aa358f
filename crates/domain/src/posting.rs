//! The one posting path: every job that moves money (a batch of transfers,
//! a usage batch's charges, a month close's settlements, and the ones to
//! come) turns its intents into transfers and entries here, in a [`Journal`].
//!
//! A journal holds the wallets its job read under lock (a [`Book`]) and the
//! fresh transfer ids storage drew for it. Each [`Posting`] is applied in
//! order: posted (two entries, balances moved) or refused (nothing moved).
//! What the job writes afterwards ([`JournalWrites`]) is the transfers, their
//! entries and the new state of every wallet they touched, each paired with
//! the entry number it had when read, which storage checks (optimistic
//! batches) or asserts (under lock).

use std::collections::{BTreeSet, HashMap};

use crate::ids::{TenantId, TransferId, WalletId};
use crate::ledger::{Book, PostedEntries, TransferIntent, TransferKind, TransferRejection, WalletState};
use crate::money::PositiveAmount;

/// What must match for a reused idempotency key to count as a replay: the
/// same kind of move, between the same wallets, of the same amount and
/// currency. One format for every transfer, whatever job posts it.
pub fn fingerprint(kind: TransferKind, intent: &TransferIntent) -> String {
    format!("{}:{}>{}:{}:{}", kind.as_str(), intent.debit, intent.credit, intent.amount.minor(), intent.currency)
}

/// The fingerprint of the transfer that posts hold `hold`: the transfer's own,
/// bound to the hold, so that a key reused to post another hold (or for a
/// plain transfer) between the same wallets is not taken for a replay.
pub fn hold_post_fingerprint(hold: TransferId, kind: TransferKind, intent: &TransferIntent) -> String {
    format!("{}:hold:{}", fingerprint(kind, intent), hold)
}

/// A transfer to post, as every job asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub tenant: TenantId,
    pub kind: TransferKind,
    pub intent: TransferIntent,
    pub memo: Option<String>,
    /// A refusal is recorded only when it carries a key, so that the key
    /// replays it; otherwise a refusal leaves no row.
    pub idempotency_key: Option<String>,
}

/// A transfer as the journal records it: the request and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalTransfer {
    pub id: TransferId,
    pub tenant: TenantId,
    pub kind: TransferKind,
    pub intent: TransferIntent,
    pub fingerprint: String,
    pub memo: Option<String>,
    pub idempotency_key: Option<String>,
    /// `Ok` with the debit and credit entry numbers when posted.
    pub outcome: Result<(i64, i64), TransferRejection>,
    pub created_at_us: i64,
}

/// An entry a posted transfer appends to a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry {
    pub wallet: WalletId,
    pub seq: i64,
    pub tenant: TenantId,
    pub transfer: TransferId,
    /// Signed: negative on the debited side.
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub created_at_us: i64,
}

/// A pending transfer (a hold) as storage keeps it: what it reserved, on
/// which wallet, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: TransferId,
    pub tenant: TenantId,
    pub kind: TransferKind,
    /// The debit wallet, the credit wallet, and the amount reserved.
    pub intent: TransferIntent,
    /// When it voids itself if neither posted nor voided.
    pub timeout_at_us: i64,
    pub state: HoldState,
}

impl Hold {
    /// The same hold, reserving `amount_minor`.
    pub fn with_amount(self, amount_minor: i64) -> Hold {
        let amount = PositiveAmount::new(amount_minor).expect("a hold reserves a positive amount");
        Hold { intent: TransferIntent { amount, ..self.intent }, ..self }
    }
}

/// Where a hold stands. Only a pending hold reserves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Pending,
    /// Posted as `transfer`, for `amount_minor` (at most what was reserved).
    Posted {
        transfer: TransferId,
        amount_minor: i64,
    },
    /// Voided by its owner.
    Voided,
    /// Voided by itself, at its timeout.
    Expired,
    /// Refused when asked for (kept so that its idempotency key replays it).
    Rejected(TransferRejection),
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Pending => "pending",
            HoldState::Posted { .. } => "posted",
            HoldState::Voided => "voided",
            HoldState::Expired => "expired",
            HoldState::Rejected(_) => "rejected",
        }
    }
}

/// A hold that changed in a job: new (pending or refused), or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldChange {
    Opened { hold: Hold, fingerprint: String, memo: Option<String>, idempotency_key: Option<String>, created_at_us: i64 },
    Resolved { id: TransferId, state: HoldState, at_us: i64 },
}

/// Why a hold cannot be posted or voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HoldRefusal {
    #[error("the hold is no longer pending")]
    NotPending,
    #[error("a hold posts at most the amount it reserved")]
    MoreThanReserved,
    #[error(transparent)]
    Rejected(#[from] TransferRejection),
}

/// What a wallet held when a job read it: what the write checks is unchanged
/// (optimistic batches) or asserts (under lock). Its floor is in its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletRead {
    pub entry_seq: i64,
    pub reserved_minor: i64,
}

/// What a job writes: its transfers, their entries, the holds it opened or
/// resolved, and each wallet it moved (its new state and what it held when read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalWrites {
    pub transfers: Vec<JournalTransfer>,
    pub entries: Vec<JournalEntry>,
    pub holds: Vec<HoldChange>,
    pub wallets: Vec<(WalletState, WalletRead)>,
}

/// The storage drew fewer fresh transfer ids than the job posts: a bug of
/// the job, reported rather than panicking inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the job posted more transfers than it drew ids for")]
pub struct OutOfIds;

/// The wallets of one job, the ids it may use, and what it posted so far.
#[derive(Debug)]
pub struct Journal {
    book: Book,
    as_read: HashMap<WalletId, WalletRead>,
    /// Wallets whose balance or reservation changed.
    moved: BTreeSet<WalletId>,
    fresh_ids: std::vec::IntoIter<TransferId>,
    now_us: i64,
    writes: JournalWrites,
}

impl Journal {
    /// A journal over the wallets read under lock, with `fresh_ids` to give
    /// the transfers it records; `now_us` stamps them.
    pub fn new(wallets: impl IntoIterator<Item = WalletState>, fresh_ids: Vec<TransferId>, now_us: i64) -> Journal {
        Journal::over(Book::new(wallets), fresh_ids, now_us)
    }

    /// A journal over a book as read (no transfer applied to it yet).
    pub fn over(book: Book, fresh_ids: Vec<TransferId>, now_us: i64) -> Journal {
        let as_read = book.wallets().map(|w| (w.id, WalletRead { entry_seq: w.entry_seq, reserved_minor: w.reserved_minor })).collect();
        Journal { book, as_read, moved: BTreeSet::new(), fresh_ids: fresh_ids.into_iter(), now_us, writes: JournalWrites::default() }
    }

    /// The wallets as the postings so far left them.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// Takes the next fresh id, for a request answered without a posting (a
    /// refusal without a key still gets an id in its receipt, so ids are
    /// drawn one per request).
    pub fn next_id(&mut self) -> Result<TransferId, OutOfIds> {
        self.fresh_ids.next().ok_or(OutOfIds)
    }

    /// Posts `posting` (or refuses it: nothing moves) under a fresh id, and
    /// records the transfer (a refusal only when it carries a key) with its
    /// entries.
    pub fn post(&mut self, posting: Posting) -> Result<(TransferId, Result<PostedEntries, TransferRejection>), OutOfIds> {
        let id = self.next_id()?;
        Ok((id, self.post_as(id, posting)))
    }

    /// As [`Journal::post`], under an id already drawn with [`Journal::next_id`].
    pub fn post_as(&mut self, id: TransferId, posting: Posting) -> Result<PostedEntries, TransferRejection> {
        let outcome = self.book.apply(&posting.intent);
        let fingerprint = fingerprint(posting.kind, &posting.intent);
        self.record(id, posting, fingerprint, outcome)
    }

    /// Records a transfer's outcome: the transfer (a refusal only when it
    /// carries a key) and, posted, its entries.
    fn record(&mut self, id: TransferId, posting: Posting, fingerprint: String, outcome: Result<PostedEntries, TransferRejection>) -> Result<PostedEntries, TransferRejection> {
        if let Ok(posted) = &outcome {
            self.moved.extend([posted.debit.wallet, posted.credit.wallet]);
            for line in [posted.debit, posted.credit] {
                self.writes.entries.push(JournalEntry {
                    wallet: line.wallet,
                    seq: line.seq,
                    tenant: posting.tenant,
                    transfer: id,
                    amount_minor: line.amount_minor,
                    balance_after_minor: line.balance_after_minor,
                    created_at_us: self.now_us,
                });
            }
        }
        if outcome.is_ok() || posting.idempotency_key.is_some() {
            self.writes.transfers.push(JournalTransfer {
                id,
                tenant: posting.tenant,
                kind: posting.kind,
                fingerprint,
                intent: posting.intent,
                memo: posting.memo,
                idempotency_key: posting.idempotency_key,
                outcome: outcome.map(|posted| (posted.debit.seq, posted.credit.seq)),
                created_at_us: self.now_us,
            });
        }
        outcome
    }

    /// Opens a hold: reserves `posting`'s amount on its debit wallet until
    /// `timeout_at_us`, under a fresh id. A refusal is recorded only when it
    /// carries a key, as for transfers.
    pub fn reserve(&mut self, posting: Posting, timeout_at_us: i64) -> Result<(TransferId, Result<(), TransferRejection>), OutOfIds> {
        let id = self.next_id()?;
        let outcome = self.book.reserve(&posting.intent);
        if outcome.is_ok() {
            self.moved.insert(posting.intent.debit);
        }
        if outcome.is_ok() || posting.idempotency_key.is_some() {
            let state = outcome.map_or_else(HoldState::Rejected, |()| HoldState::Pending);
            self.writes.holds.push(HoldChange::Opened {
                hold: Hold { id, tenant: posting.tenant, kind: posting.kind, intent: posting.intent, timeout_at_us, state },
                fingerprint: fingerprint(posting.kind, &posting.intent),
                memo: posting.memo,
                idempotency_key: posting.idempotency_key,
                created_at_us: self.now_us,
            });
        }
        Ok((id, outcome))
    }

    /// Posts a pending hold for `amount` (its whole reservation when `None`)
    /// as a transfer of its own, under a fresh id; the rest of the
    /// reservation is given back. Refused, nothing changes and the hold stays
    /// pending.
    pub fn post_hold(
        &mut self,
        hold: &Hold,
        amount: Option<PositiveAmount>,
        memo: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<(TransferId, Result<PostedEntries, HoldRefusal>), OutOfIds> {
        let id = self.next_id()?;
        if hold.state != HoldState::Pending {
            return Ok((id, Err(HoldRefusal::NotPending)));
        }
        let amount = amount.unwrap_or(hold.intent.amount);
        if amount.minor() > hold.intent.amount.minor() {
            return Ok((id, Err(HoldRefusal::MoreThanReserved)));
        }
        let intent = TransferIntent { amount, ..hold.intent };
        let outcome = self.book.post_reserved(&hold.intent, &intent);
        let posting = Posting { tenant: hold.tenant, kind: hold.kind, intent, memo, idempotency_key };
        let posted = match self.record(id, posting, hold_post_fingerprint(hold.id, hold.kind, &intent), outcome) {
            Ok(posted) => posted,
            Err(reason) => return Ok((id, Err(HoldRefusal::Rejected(reason)))),
        };
        self.moved.insert(hold.intent.debit);
        self.writes.holds.push(HoldChange::Resolved { id: hold.id, state: HoldState::Posted { transfer: id, amount_minor: amount.minor() }, at_us: self.now_us });
        Ok((id, Ok(posted)))
    }

    /// Voids a pending hold (by its owner, or `expired` at its timeout): its
    /// reservation is given back.
    pub fn void_hold(&mut self, hold: &Hold, expired: bool) -> Result<(), HoldRefusal> {
        if hold.state != HoldState::Pending {
            return Err(HoldRefusal::NotPending);
        }
        self.book.release(hold.intent.debit, hold.intent.amount.minor());
        self.moved.insert(hold.intent.debit);
        let state = if expired { HoldState::Expired } else { HoldState::Voided };
        self.writes.holds.push(HoldChange::Resolved { id: hold.id, state, at_us: self.now_us });
        Ok(())
    }

    /// The instant the journal stamps its transfers with.
    pub fn now_us(&self) -> i64 {
        self.now_us
    }

    /// What to write: the transfers, their entries, and every wallet they
    /// moved with the entry number it had when read.
    pub fn finish(self) -> JournalWrites {
        let Journal { book, as_read, moved, mut writes, .. } = self;
        writes.wallets = moved
            .into_iter()
            .map(|id| {
                let state = book.wallet(id).expect("entries only name wallets of the book").clone();
                (state, as_read[&id])
            })
            .collect();
        debug_assert!(book.wallets().all(|w| w.balance_minor >= w.floor_minor.unwrap_or(i64::MIN)), "a job left a wallet below its floor");
        writes
    }
}

/// How an owner pays a charge from its two spendable wallets: promo money
/// first, then primary money, each down to its floor. The parts that are not
/// zero, in that order; `None` when the two together cannot pay it all.
pub fn promo_first(book: &Book, promo: WalletId, primary: WalletId, amount_minor: i64) -> Option<Vec<(WalletId, PositiveAmount)>> {
    // Each available amount is at most AMOUNT_MINOR_MAX: their sum cannot overflow.
    if amount_minor <= 0 || book.available_minor(promo) + book.available_minor(primary) < amount_minor {
        return None;
    }
    let from_promo = amount_minor.min(book.available_minor(promo));
    Some([(promo, from_promo), (primary, amount_minor - from_promo)].into_iter().filter_map(|(wallet, part)| Some((wallet, PositiveAmount::new(part).ok()?))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::DebitRule;
    use crate::money::Currency;
    use proptest::prelude::*;

    const TENANT: TenantId = TenantId(1);

    fn wallet(id: i64, balance: i64, floor: Option<i64>) -> WalletState {
        WalletState { id: WalletId(id), currency: Currency::Cny, balance_minor: balance, floor_minor: floor, entry_seq: id * 10, reserved_minor: 0 }
    }

    fn posting(debit: i64, credit: i64, amount: i64, key: Option<&str>) -> Posting {
        Posting {
            tenant: TENANT,
            kind: TransferKind::Allocation,
            intent: TransferIntent { debit: WalletId(debit), credit: WalletId(credit), amount: PositiveAmount::new(amount).unwrap(), currency: Currency::Cny, debit_rule: DebitRule::ToFloor },
            memo: None,
            idempotency_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn one_fingerprint_format() {
        let intent = posting(3, 4, 1_250, None).intent;
        assert_eq!(fingerprint(TransferKind::Charge, &intent), "charge:3>4:1250:CNY");
    }

    #[test]
    fn posts_records_and_reports_touched_wallets_with_their_seqs_as_read() {
        let mut journal = Journal::new([wallet(1, 1_000, Some(0)), wallet(2, 0, Some(0)), wallet(3, 0, Some(0))], (100..105).map(TransferId).collect(), 7);
        let (first, outcome) = journal.post(posting(1, 2, 600, None)).unwrap();
        assert_eq!(first, TransferId(100));
        assert!(outcome.is_ok());
        // Refused without a key: nothing recorded, but the id is used.
        let (second, outcome) = journal.post(posting(1, 2, 600, None)).unwrap();
        assert_eq!((second, outcome.map(|_| ())), (TransferId(101), Err(TransferRejection::InsufficientFunds)));
        // Refused with a key: recorded so that the key replays it.
        let (_, outcome) = journal.post(posting(1, 2, 600, Some("k"))).unwrap();
        assert!(outcome.is_err());
        journal.post(posting(1, 2, 400, None)).unwrap().1.unwrap();
        let writes = journal.finish();
        assert_eq!(writes.transfers.iter().map(|t| t.id.0).collect::<Vec<_>>(), [100, 102, 103]);
        assert_eq!(writes.transfers[1].outcome, Err(TransferRejection::InsufficientFunds));
        assert_eq!(writes.transfers[2].outcome, Ok((12, 22)));
        assert_eq!(writes.entries.len(), 4);
        assert_eq!(writes.wallets.iter().map(|(w, read)| (w.id.0, w.balance_minor, w.entry_seq, read.entry_seq)).collect::<Vec<_>>(), [(1, 0, 12, 10), (2, 1_000, 22, 20)]);
    }

    #[test]
    fn running_out_of_ids_is_an_error_not_a_panic() {
        let mut journal = Journal::new([wallet(1, 1_000, Some(0)), wallet(2, 0, Some(0))], vec![TransferId(1)], 0);
        assert!(journal.post(posting(1, 2, 1, None)).is_ok());
        assert_eq!(journal.post(posting(1, 2, 1, None)), Err(OutOfIds));
    }

    #[test]
    fn promo_money_first() {
        let book = Book::new([wallet(1, 300, Some(0)), wallet(2, 1_000, Some(-500))]);
        let parts = |amount| promo_first(&book, WalletId(1), WalletId(2), amount).map(|p| p.into_iter().map(|(w, a)| (w.0, a.minor())).collect::<Vec<_>>());
        assert_eq!(parts(200), Some(vec![(1, 200)]));
        assert_eq!(parts(300), Some(vec![(1, 300)]));
        assert_eq!(parts(1_000), Some(vec![(1, 300), (2, 700)]));
        assert_eq!(parts(1_800), Some(vec![(1, 300), (2, 1_500)]), "primary down to its floor");
        assert_eq!(parts(1_801), None);
        assert_eq!(parts(0), None);
    }

    #[test]
    fn holds_reserve_then_post_part_or_void() {
        let mut journal = Journal::new([wallet(1, 1_000, Some(0)), wallet(2, 0, Some(0))], (1..=10).map(TransferId).collect(), 5);
        let (id, opened) = journal.reserve(posting(1, 2, 800, Some("h1")), 99).unwrap();
        assert_eq!((id, opened), (TransferId(1), Ok(())));
        let (_, refused) = journal.reserve(posting(1, 2, 201, Some("h2")), 99).unwrap();
        assert_eq!(refused, Err(TransferRejection::InsufficientFunds), "800 of 1,000 is reserved");
        let hold = Hold { id, tenant: TENANT, kind: TransferKind::Allocation, intent: posting(1, 2, 800, None).intent, timeout_at_us: 99, state: HoldState::Pending };
        let too_much = PositiveAmount::new(801).unwrap();
        assert_eq!(journal.post_hold(&hold, Some(too_much), None, None).unwrap().1.map(|_| ()), Err(HoldRefusal::MoreThanReserved));
        let (transfer, posted) = journal.post_hold(&hold, Some(PositiveAmount::new(300).unwrap()), None, Some("p1".into())).unwrap();
        assert_eq!(posted.unwrap().debit.balance_after_minor, 700);
        let posted_hold = Hold { state: HoldState::Posted { transfer, amount_minor: 300 }, ..hold.clone() };
        assert_eq!(journal.void_hold(&posted_hold, false), Err(HoldRefusal::NotPending), "a hold resolves once");
        let (second, _) = journal.reserve(posting(1, 2, 700, None), 99).unwrap();
        journal.void_hold(&Hold { id: second, ..hold.clone() }.with_amount(700), true).unwrap();
        let writes = journal.finish();
        assert_eq!(writes.transfers.len(), 1, "only the post is a transfer");
        assert_eq!(writes.entries.len(), 2);
        let states: Vec<_> = writes
            .holds
            .iter()
            .map(|h| match h {
                HoldChange::Opened { hold, .. } => (hold.id.0, hold.state.as_str()),
                HoldChange::Resolved { id, state, .. } => (id.0, state.as_str()),
            })
            .collect();
        assert_eq!(states, [(1, "pending"), (2, "rejected"), (1, "posted"), (5, "pending"), (5, "expired")]);
        assert_eq!(writes.wallets.iter().map(|(w, _)| (w.id.0, w.balance_minor, w.reserved_minor)).collect::<Vec<_>>(), [(1, 700, 0), (2, 300, 0)]);
    }

    proptest! {
        /// Whatever is posted, the journal's writes balance: per transfer two
        /// entries of opposite amounts, per wallet entries numbered on from
        /// the number read and ending at the written state.
        #[test]
        fn writes_are_consistent(moves in proptest::collection::vec((1i64..5, 1i64..5, 1i64..2_000, proptest::bool::ANY), 0..60)) {
            let wallets = (1..5).map(|id| wallet(id, 1_000, if id == 1 { None } else { Some(0) }));
            let mut journal = Journal::new(wallets, (1..=60).map(TransferId).collect(), 0);
            for (debit, credit, amount, keyed) in moves {
                let _ = journal.post(posting(debit, credit, amount, keyed.then_some("k"))).unwrap();
            }
            let writes = journal.finish();
            for t in &writes.transfers {
                let entries: Vec<_> = writes.entries.iter().filter(|e| e.transfer == t.id).collect();
                match t.outcome {
                    Ok(_) => prop_assert!(entries.len() == 2 && entries[0].amount_minor + entries[1].amount_minor == 0),
                    Err(_) => prop_assert!(entries.is_empty() && t.idempotency_key.is_some()),
                }
            }
            for (state, read_seq) in &writes.wallets {
                let mut seqs: Vec<i64> = writes.entries.iter().filter(|e| e.wallet == state.id).map(|e| e.seq).collect();
                seqs.sort_unstable();
                prop_assert_eq!(seqs, ((read_seq.entry_seq + 1)..=state.entry_seq).collect::<Vec<_>>());
                let last = writes.entries.iter().filter(|e| e.wallet == state.id).max_by_key(|e| e.seq).unwrap();
                prop_assert_eq!(last.balance_after_minor, state.balance_minor);
            }
        }
    }
}
