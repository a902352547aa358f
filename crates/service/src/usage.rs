//! Usage ingestion: validate and resolve a batch of events, then have the
//! ledger worker rate, count, charge and record it in one transaction.
//!
//! # A usage batch, step by step
//!
//! 1. **Edge.** `POST /v1/usage` takes at most [`USAGE_BATCH_MAX`] events in a
//!    body of at most 2 MiB, with no NUL in any string (`ApiJson` scans the
//!    raw body first: about 30 µs for 2 MiB); quantities parse into
//!    `Quantity`, times into microseconds. `subledger usage import` streams a
//!    file into the same call, batch by batch.
//! 2. **[`Services::ingest_usage`]** refuses a malformed batch whole (too many
//!    events; an id, account, product or attribute past its limits:
//!    `Invalid`, 400) before anything is read. It resolves usernames (cached),
//!    products and the tariff book (cached per tenant), and pre-checks each
//!    event: unknown product, missing grouping attribute, zero quantity, more
//!    than [`FUTURE_TOLERANCE_US`] in the future or [`LATE_USAGE_DAYS_MAX`]
//!    days in the past, unknown account; each is a rejection of that event
//!    alone. It picks the tariff version in force at the event's
//!    `occurred_at` (none, or a per-country price without the event's
//!    country: `no_tariff` later) and hands the batch to the ledger worker as
//!    one [`UsageJob`].
//! 3. **Merge.** The worker runs consecutive queued jobs of one tenant as one
//!    transaction (`usage_groups`, up to `USAGE_MERGE_EVENTS_MAX` events): a
//!    batch costs mostly per distinct account, so merged jobs share that
//!    cost. The events keep their order, so the outcomes are those of the jobs
//!    one after the other; if the merged transaction fails, it is split so
//!    that one job's failure is not another's.
//! 4. **Read under lock** (`run_usage_jobs`, storage's `begin_usage`): the
//!    write lock on SQLite; on PostgreSQL the tenant's close lock, shared (a
//!    close holds it exclusively), and the accounts' and revenue wallets
//!    `FOR UPDATE`. Then the earlier outcomes of the event ids, the accounts'
//!    terms, the month-to-date rollups of each (account, product, month),
//!    today's quota counts, and which months are closed.
//! 5. **Decide** (`subledger_domain::usage::ingest`), each event in order: a
//!    seen id replays its first outcome; a frozen account, a missing tariff or
//!    a used-up daily quota is a rejection; an accepted event costs
//!    `marginal_micros` on top of its month so far, rounded to cents on the
//!    cumulative amount, so a month's charges add up to its cost rounded
//!    once. An event that would take its month, its account's charges in the
//!    batch or the revenue wallet past their limits is `amount_too_large`. A
//!    prepaid account pays from promo, then primary, down to its floor
//!    (`insufficient_funds` otherwise); a postpaid one pays at month close.
//! 6. **Write and commit** (storage's `finish_usage`): the events with their
//!    outcomes, `usage_daily`, `usage_monthly` (flagged `late` when its month
//!    is closed), `quota_usage`, and one `charge` transfer per account and
//!    wallet to the tenant's revenue wallet, posted through the domain's
//!    `Journal`. Each event is answered only after the commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::{AccountId, TenantId, WalletId};
use subledger_domain::ledger::{Book, TransferKind, WalletPurpose};
use subledger_domain::money::Currency;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::posting::{Journal, Posting};
use subledger_domain::rating::{Grouping, PriceModel, Quantity};
use subledger_domain::usage::{self as engine, BatchState, EventInput, MonthRollup, Outcome, UsageRejection};
use subledger_storage::ledger::usage::{self as store_usage, NewUsageEvent, UsageKeys, UsageWrites};
use subledger_storage::ledger::{LedgerWriter, LedgerWrites};
use subledger_storage::records::ChangeRecords;
use subledger_storage::{StorageError, catalog as store_catalog};

use crate::Change;
use crate::error::{ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// Most events one batch may carry.
pub const USAGE_BATCH_MAX: usize = 1_000;
/// Longest event id, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 128;
/// Most attributes per event, and the longest attribute name and value.
pub const ATTRIBUTES_MAX: usize = 16;
pub const ATTRIBUTE_BYTES_MAX: usize = 256;
/// How old an event may be: late usage is billed on the next bill, but usage
/// from more than about a year ago is almost certainly a wrong clock, and
/// would reopen months nobody looks at any more.
pub const LATE_USAGE_DAYS_MAX: i64 = 400;
const LATE_USAGE_US_MAX: i64 = LATE_USAGE_DAYS_MAX * 24 * 3600 * 1_000_000;

/// How far in the future an event may claim to have occurred (clock skew).
pub const FUTURE_TOLERANCE_US: i64 = 5 * 60 * 1_000_000;

/// One event as received, already parsed at the edge.
#[derive(Debug, Clone)]
pub struct UsageEventIn {
    pub id: String,
    pub username: String,
    pub product: String,
    pub quantity: Quantity,
    pub occurred_at_us: i64,
    pub attributes: BTreeMap<String, String>,
}

/// The answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageResult {
    pub id: String,
    pub outcome: Outcome,
    /// True when the id was seen before: `outcome` is the first one.
    pub duplicate: bool,
    /// The currency of the event's product, which the outcome's amounts are
    /// in: always known for an event accepted now; `None` when the tenant has
    /// no such product. (Ids alone are compared: a duplicate that names
    /// another product than the first event misuses its id.)
    pub currency: Option<Currency>,
}

/// What the worker needs to run a batch.
pub struct UsageJob {
    pub tenant: TenantId,
    /// The tenant's revenue wallet of each currency the batch's products are in.
    pub revenue: BTreeMap<Currency, WalletId>,
    pub events: Vec<EventInput>,
    pub raw: Vec<RawEvent>,
    /// What commits with the batch (see [`crate::Change`]).
    pub records: ChangeRecords,
}

/// What is stored of an event besides its outcome.
pub struct RawEvent {
    pub username: String,
    pub quantity_milli: i64,
    pub occurred_at_us: i64,
    pub attributes: Option<String>,
}

impl Services {
    /// Ingests a batch: each event is answered on its own (accepted with its
    /// charge, duplicate with its first outcome, or rejected with a reason),
    /// and the batch is recorded in one transaction — never half of it.
    pub async fn ingest_usage(&self, tenant: &Tenant, events: Vec<UsageEventIn>, change: &Change) -> ServiceResult<Vec<UsageResult>> {
        if events.len() > USAGE_BATCH_MAX {
            return Err(ServiceError::Invalid { field: "events", reason: format!("a batch holds at most {USAGE_BATCH_MAX} events") });
        }
        for event in &events {
            validate_event(event)?;
        }
        let events_count = events.len();
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let products = self.products(tenant).await?;
        let tariffs = self.tariff_book(tenant).await?;
        let accounts = self.account_ids(tenant, events.iter().map(|e| e.username.as_str())).await?;
        let currencies: BTreeSet<Currency> = events.iter().filter_map(|e| products.iter().find(|p| p.code == e.product)).map(|p| p.currency).collect();
        let revenue = self.revenue_wallets(tenant, currencies).await?;
        let now = now_us();

        let mut inputs = Vec::with_capacity(events.len());
        let mut raw = Vec::with_capacity(events.len());
        for event in &events {
            let at = from_unix_micros(event.occurred_at_us);
            let day = tenant.timezone.day_of(at);
            let product = products.iter().find(|p| p.code == event.product);
            let account = accounts.get(event.username.as_str()).copied().ok_or(UsageRejection::UnknownAccount);
            let (attr, country) = match product.map(|p| p.grouping) {
                Some(Grouping::Country) => {
                    let country = event.attributes.get("country").and_then(|c| c.parse::<i64>().ok());
                    (country.map(|c| c.to_string()).unwrap_or_default(), country)
                }
                // An item is its type (e.g. 国内) and its name (e.g. an IP), when the type is given.
                Some(Grouping::Item) => match (event.attributes.get("item"), event.attributes.get("type")) {
                    (Some(item), Some(kind)) if !item.is_empty() => (format!("{kind}|{item}"), None),
                    (Some(item), _) => (item.clone(), None),
                    _ => (String::new(), None),
                },
                _ => (String::new(), None),
            };
            let pre_check = if product.is_none() {
                Err(UsageRejection::UnknownProduct)
            } else if product.is_some_and(|p| p.kind.is_monthly_fee()) {
                Err(UsageRejection::NotMetered)
            } else if product.is_some_and(|p| p.grouping != Grouping::None) && attr.is_empty() {
                Err(UsageRejection::MissingAttribute)
            } else if event.quantity.milli() == 0 {
                Err(UsageRejection::InvalidQuantity)
            } else if event.occurred_at_us > now + FUTURE_TOLERANCE_US {
                Err(UsageRejection::InFuture)
            } else if event.occurred_at_us < now - LATE_USAGE_US_MAX {
                Err(UsageRejection::TooOld)
            } else {
                account
            };
            // A per-country price without this country (and no default) has no
            // price for the event: refused as `no_tariff`, not charged nothing.
            let model = pre_check
                .ok()
                .and_then(|account| tariffs.in_force(&event.product, account, event.occurred_at_us))
                .map(|v| v.model.clone())
                .filter(|model| !matches!(**model, PriceModel::ByCountry { .. }) || country.is_some_and(|c| model.country_price(c).is_some()));
            inputs.push(EventInput {
                event_id: event.id.clone(),
                at_us: event.occurred_at_us,
                category: product.map_or(subledger_domain::catalog::BillCategory::Other, |p| p.category),
                account: pre_check,
                product: event.product.clone(),
                // An unknown product was refused above, so its currency is never read.
                currency: product.map_or(subledger_domain::catalog::BUILTIN_CURRENCY, |p| p.currency),
                quantity: event.quantity,
                day: day.to_string(),
                month: day.month().to_string(),
                attr,
                country,
                model,
            });
            raw.push(RawEvent {
                username: event.username.clone(),
                quantity_milli: event.quantity.milli(),
                occurred_at_us: event.occurred_at_us,
                attributes: (!event.attributes.is_empty()).then(|| serde_json::to_string(&event.attributes).expect("string maps serialize")),
            });
        }
        let outcomes = self
            .ledger
            .submit_usage(UsageJob {
                tenant: tenant.id,
                revenue,
                events: inputs,
                raw,
                records: change.records(tenant.id, Operation::new(OperationKind::UsageIngest, "").with_detail(format!("{events_count} events"))),
            })
            .await?;
        let results = events.into_iter().zip(outcomes).map(|(event, (outcome, duplicate))| {
            let currency = products.iter().find(|p| p.code == event.product).map(|p| p.currency);
            UsageResult { id: event.id, outcome, duplicate, currency }
        });
        Ok(results.collect())
    }

    /// Account ids of usernames (the mapping never changes, so it is cached).
    async fn account_ids<'a>(&self, tenant: &Tenant, usernames: impl Iterator<Item = &'a str>) -> ServiceResult<HashMap<String, AccountId>> {
        let mut found = HashMap::new();
        let mut missing: Vec<&str> = Vec::new();
        for name in usernames {
            if found.contains_key(name) || missing.contains(&name) {
                continue;
            }
            match self.caches.account_id(tenant.id, name) {
                Some(id) => {
                    found.insert(name.to_owned(), id);
                }
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            for (name, id) in store_catalog::account_ids(&self.store, tenant.id, &missing).await? {
                self.caches.remember_account_id(tenant.id, name.clone(), id);
                found.insert(name, id);
            }
        }
        Ok(found)
    }

    /// The tenant's revenue wallets of these currencies, where usage charges
    /// and settlements go (opened with the tenant's other wallets of a
    /// currency on its first use).
    pub(crate) async fn revenue_wallets(&self, tenant: &Tenant, currencies: BTreeSet<Currency>) -> ServiceResult<BTreeMap<Currency, WalletId>> {
        let mut wallets = BTreeMap::new();
        for currency in currencies {
            wallets.insert(currency, self.system_wallet(tenant, WalletPurpose::Revenue, currency).await?);
        }
        Ok(wallets)
    }
}

fn validate_event(event: &UsageEventIn) -> ServiceResult<()> {
    let invalid = |reason: String| Err(ServiceError::Invalid { field: "event", reason });
    if event.id.is_empty() || event.id.len() > EVENT_ID_BYTES_MAX || event.id.chars().any(char::is_control) {
        return invalid(format!("event ids are 1 to {EVENT_ID_BYTES_MAX} bytes without control characters"));
    }
    if event.username.is_empty() || event.username.len() > 64 || event.product.is_empty() || event.product.len() > 64 {
        return invalid(format!("event {}: account and product are required", event.id));
    }
    // Attribute names are keys, like event ids: no control characters. Values
    // are text (a note from a spreadsheet may span lines).
    let attribute_ok = |(name, value): (&String, &String)| !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control) && value.len() <= ATTRIBUTE_BYTES_MAX;
    if event.attributes.len() > ATTRIBUTES_MAX || !event.attributes.iter().all(attribute_ok) {
        return invalid(format!("event {}: at most {ATTRIBUTES_MAX} attributes, names up to 64 bytes without control characters, values up to {ATTRIBUTE_BYTES_MAX}", event.id));
    }
    Ok(())
}

/// Runs queued usage jobs of one tenant on the ledger writer, as one
/// transaction: their events in order, exactly as the jobs one after the
/// other (an id repeated in a later job is its duplicate). A batch costs
/// mostly per distinct account it touches (its wallets, rollups, quota rows
/// and one charge each), so jobs over the same accounts share that cost.
/// Returns each job's outcomes.
pub(crate) async fn run_usage_jobs(writer: &LedgerWriter, jobs: &[UsageJob]) -> Result<Vec<Vec<(Outcome, bool)>>, StorageError> {
    let job = jobs.first().expect("at least one job");
    debug_assert!(jobs.iter().all(|j| j.tenant == job.tenant), "merged jobs share a tenant");
    // A tenant's revenue wallets never change, so merged jobs agree on those they share.
    let revenue: BTreeMap<Currency, WalletId> = jobs.iter().flat_map(|j| j.revenue.iter().map(|(currency, wallet)| (*currency, *wallet))).collect();
    let revenue_ids: Vec<WalletId> = revenue.values().copied().collect();
    let events: Vec<&EventInput> = jobs.iter().flat_map(|j| &j.events).collect();
    let raws: Vec<&RawEvent> = jobs.iter().flat_map(|j| &j.raw).collect();
    // Each account with the currencies it is charged in.
    let mut accounts: Vec<(AccountId, Currency)> = events.iter().filter_map(|e| Some((e.account.ok()?, e.currency))).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let event_ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let mut month_keys: Vec<(AccountId, &str, &str)> = events.iter().filter_map(|e| Some((e.account.ok()?, e.product.as_str(), e.month.as_str()))).collect();
    month_keys.sort_unstable();
    month_keys.dedup();
    let mut quota_days: Vec<(AccountId, &str)> = events.iter().filter_map(|e| Some((e.account.ok()?, e.day.as_str()))).collect();
    quota_days.sort_unstable();
    quota_days.dedup();
    let mut month_names: Vec<&str> = events.iter().map(|e| e.month.as_str()).collect();
    month_names.sort_unstable();
    month_names.dedup();
    // Cards are read only for the accounts with events they may cover.
    let card_events: Vec<&EventInput> = events.iter().copied().filter(|e| e.account.is_ok() && e.model.as_deref().is_some_and(|m| subledger_domain::timecards::covers(e.category, m))).collect();
    let mut card_accounts: Vec<AccountId> = card_events.iter().filter_map(|e| e.account.ok()).collect();
    card_accounts.sort_unstable();
    card_accounts.dedup();
    let cards_after_us = card_events.iter().map(|e| e.at_us).min().unwrap_or(0);
    let keys = UsageKeys {
        tenant: job.tenant,
        event_ids: &event_ids,
        accounts: &accounts,
        months: &month_keys,
        quota_days: &quota_days,
        month_names: &month_names,
        revenue: &revenue_ids,
        ids_needed: accounts.len() * 2,
        card_accounts: &card_accounts,
        cards_after_us,
    };
    let (tx, reads) = store_usage::begin_usage(writer, &keys).await?;

    if reads.wallets.iter().any(|(tenant, _)| *tenant != job.tenant) {
        return Err(StorageError::Corrupt("a usage batch named a wallet of another tenant".to_owned()));
    }
    let mut months: HashMap<(AccountId, String, String), MonthRollup> = HashMap::new();
    for ((account, product, month, attr), amounts) in reads.months {
        months.entry((account, product, month)).or_default().by_attr.insert(attr, amounts);
    }
    let closed: HashSet<String> = reads.closed_months.into_iter().collect();
    let closing: HashMap<String, AccountId> = reads.closing_months.into_iter().collect();
    // Usage of a closed month is late (billed at the next close); of a month
    // whose close is under way, late for the accounts already billed, and on
    // the month's own bill for the others.
    let late = |(account, _, month, _): &store_usage::RollupKey| closed.contains(month) || closing.get(month).is_some_and(|last| account <= last);
    let mut state = BatchState {
        earlier: reads.earlier.into_iter().collect(),
        accounts: reads.accounts.into_iter().map(|a| (a.id, a)).collect(),
        months,
        quota_used: reads.quota.into_iter().collect(),
        book: Book::new(reads.wallets.into_iter().map(|(_, w)| w)),
        revenue,
        cards: subledger_domain::timecards::CardBook::new(reads.cards),
    };
    let changes = engine::ingest(events.iter().copied(), &mut state);

    // The charges, through the one posting path.
    let mut journal = Journal::over(state.book, reads.transfer_ids, now_us());
    for debit in changes.debits {
        let posting = Posting { tenant: job.tenant, kind: TransferKind::Charge, intent: debit, memo: Some("usage".to_owned()), idempotency_key: None };
        let (_, posted) = journal.post(posting).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        posted.map_err(|reason| StorageError::Corrupt(format!("a usage charge the engine accepted was refused: {reason}")))?;
    }
    let now = journal.now_us();
    let mut records = ChangeRecords::default();
    for job in jobs {
        records.extend(job.records.clone());
    }
    let ledger = LedgerWrites::with_records(journal.finish(), records);

    let new_events: Vec<NewUsageEvent> = events
        .iter()
        .zip(&raws)
        .zip(&changes.outcomes)
        .filter(|(_, (_, duplicate))| !duplicate)
        .map(|((event, raw), (outcome, _))| NewUsageEvent {
            event_id: &event.event_id,
            account_id: event.account.ok(),
            username: &raw.username,
            product_code: &event.product,
            quantity_milli: raw.quantity_milli,
            occurred_at_us: raw.occurred_at_us,
            attributes: raw.attributes.as_deref(),
            outcome,
        })
        .collect();
    let days: Vec<_> = changes.days.iter().collect();
    let month_rows: Vec<_> = changes.months.iter().map(|(key, amounts)| (key, amounts, late(key))).collect();
    let quota: Vec<_> = changes.quota.iter().map(|(key, used)| (key, *used)).collect();
    let writes = UsageWrites { tenant: job.tenant, ingested_at_us: now, events: &new_events, days: &days, months: &month_rows, quota: &quota, cards: &changes.cards };
    store_usage::finish_usage(tx, &writes, &ledger).await?;
    let mut outcomes = changes.outcomes.into_iter();
    Ok(jobs.iter().map(|j| outcomes.by_ref().take(j.events.len()).collect()).collect())
}

/// Shared by the ledger module: answers a job's caller.
pub(crate) type UsageReply = tokio::sync::oneshot::Sender<ServiceResult<Vec<(Outcome, bool)>>>;
