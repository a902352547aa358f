//! The world as a whole: requests on the clock, their review, the accounts
//! they issue, spend under caps and the insights that report it.

use std::collections::BTreeMap;

use jiff::civil::Date;
use proptest::prelude::*;

use super::*;
use crate::{REQUEST_STATUSES, SYNCED_BREAKDOWNS};

const HOUR_US: i64 = 3_600_000_000;
const EPOCH_US: i64 = 1_714_521_600_000_000; // 2024-05-01T00:00:00Z

fn config() -> WorldConfig {
    WorldConfig {
        seed: 20_240_501,
        review_step_us: 600_000_000,
        request_every_us: 6 * HOUR_US,
        requests_max: 200,
        initial_requests: 4,
        daily_spend_cents_min: 5_000,
        daily_spend_cents_max: 50_000,
        disabled_per_mille: 60,
        pixels_per_tenant: 4,
    }
}

fn window(since: Date, until: Date, breakdown: Option<&'static str>) -> InsightsWindow {
    InsightsWindow { since, until, breakdown, total_postbacks: false }
}

fn spend_cents(row: &InsightsRow) -> i64 {
    let text = row.values["spend"].as_str().unwrap();
    let (dollars, cents) = text.split_once('.').unwrap();
    dollars.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

fn date(day: i64) -> Date {
    date_of_day(day).unwrap()
}

/// Keeps the last segment of each local day, as the service stores them.
fn last_of_each_day(segments: &[Segment]) -> Vec<Segment> {
    let mut by_day = BTreeMap::new();
    for segment in segments {
        by_day.insert(segment.local_day, *segment);
    }
    by_day.into_values().collect()
}

#[test]
fn requests_appear_on_the_clock_up_to_the_maximum() {
    let config = config();
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    assert_eq!(world.request_count(EPOCH_US), 4);
    assert_eq!(world.request_count(EPOCH_US - 100 * DAY_US), 0);
    // One more every six hours (made up to three hours before its slot).
    assert_eq!(world.request_count(EPOCH_US + 6 * HOUR_US), 5);
    assert_eq!(world.request_count(EPOCH_US + 60 * HOUR_US), 14);
    assert_eq!(world.request_count(EPOCH_US + 1_000 * DAY_US), 200);
    let mut last = world.request_count(EPOCH_US);
    for hour in 0..400 {
        let count = world.request_count(EPOCH_US + hour * HOUR_US);
        assert!(count >= last && count <= last + 1, "{hour}: {last} → {count}");
        last = count;
    }
    let requests = world.creation_requests("900", EPOCH_US + 60 * HOUR_US);
    assert_eq!(requests.len(), 14);
    assert!(requests.windows(2).all(|pair| pair[0].time_created_us < pair[1].time_created_us));
    assert!(requests.iter().all(|r| r.time_created_us <= EPOCH_US + 60 * HOUR_US));
}

#[test]
fn requests_move_through_meta_s_review_statuses() {
    let config = WorldConfig { review_step_us: HOUR_US, request_every_us: 2 * HOUR_US, ..config() };
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let business = "123456789";
    let mut seen = std::collections::HashSet::new();
    let mut before: Vec<CreationRequest> = Vec::new();
    for step in 0..420 {
        let now = EPOCH_US + step * config.review_step_us;
        let requests = world.creation_requests(business, now);
        for (request, earlier) in requests.iter().zip(&before) {
            assert_eq!(request.id, earlier.id);
            if request.status != earlier.status {
                assert!(review::next_statuses(&earlier.status).contains(&request.status.as_str()), "{} → {}", earlier.status, request.status);
                assert!(request.time_updated_us <= now && request.time_updated_us > now - config.review_step_us);
            }
        }
        for request in &requests {
            seen.insert(request.status.clone());
            assert!(REQUEST_STATUSES.contains(&request.status.as_str()));
            assert_ne!(request.id, request.oe_request_id);
            assert_eq!(request.fields["status"], request.status.as_str());
            assert_eq!(request.fields["chinese_legal_entity_name"], request.legal_entity_name.as_str());
            let asked = request.fields["ad_accounts_info"].as_array().unwrap();
            assert!((1..=3).contains(&asked.len()));
            assert!(asked.iter().all(|a| a["currency"] == "USD"));
            if request_approved(&request.status) {
                let names: Vec<&str> = asked.iter().map(|a| a["name"].as_str().unwrap()).collect();
                assert_eq!(request.ad_accounts.iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>(), names);
            } else {
                assert!(request.ad_accounts.is_empty());
            }
            let disapproved = matches!(request.status.as_str(), "disapproved" | "auto_disapproved" | "appeal_disapproved");
            assert!(!disapproved || request.fields.contains_key("disapproval_reasons"));
            assert_eq!(request.status == "requested_change", request.status == "requested_change" && request.fields.contains_key("request_change_reasons"));
        }
        before = requests;
    }
    // Over 200 requests every status shows up, most end approved.
    assert_eq!(seen.len(), REQUEST_STATUSES.len(), "{seen:?}");
    let approved = before.iter().filter(|r| request_approved(&r.status)).count();
    assert!(approved > 130, "{approved}");
}

#[test]
fn worlds_are_functions_of_seed_tenant_and_epoch() {
    let config = config();
    let now = EPOCH_US + 10 * DAY_US;
    let a = World::new(&config, 7, EPOCH_US).unwrap();
    assert_eq!(a.creation_requests("1", now), World::new(&config, 7, EPOCH_US).unwrap().creation_requests("1", now));
    let other_tenant = World::new(&config, 8, EPOCH_US).unwrap().creation_requests("1", now);
    assert_ne!(a.creation_requests("1", now)[0].legal_entity_name, other_tenant[0].legal_entity_name);
    let reseeded = WorldConfig { seed: 1, ..config.clone() };
    assert_ne!(a.creation_requests("1", now)[0].id, World::new(&reseeded, 7, EPOCH_US).unwrap().creation_requests("1", now)[0].id);
    assert!(World::new(&config, 1 << 30, EPOCH_US).is_none());
}

#[test]
fn approved_requests_issue_this_tenant_s_accounts_only() {
    let config = config();
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let stranger = World::new(&config, 8, EPOCH_US).unwrap();
    let now = EPOCH_US + 20 * DAY_US;
    let accounts = world.accounts(now);
    let issued: Vec<(String, String)> = world.creation_requests("1", now).into_iter().flat_map(|r| r.ad_accounts).collect();
    assert_eq!(accounts.iter().map(|a| (a.account_id.clone(), a.name.clone())).collect::<Vec<_>>(), issued);
    assert!(accounts.len() > 80, "{}", accounts.len());
    for account in &accounts {
        assert!(account.account_id.len() == 16 && account.account_id.bytes().all(|b| b.is_ascii_digit()));
        let found = world.account(&account.account_id, now).unwrap();
        assert_eq!(found.created_us(), account.created_us());
        assert!(stranger.account(&account.account_id, now).is_none());
        // Not before its request was approved.
        assert!(world.account(&account.account_id, account.created_us() - 1).is_none());
        let read = account.ad_account(&account.first_segment(), "1", now);
        assert_eq!((read.currency.as_str(), read.spend_cap_cents), ("USD", RESET_SPEND_CAP_CENTS));
        assert!(read.amount_spent_cents <= read.spend_cap_cents);
        assert_eq!(read.fields["id"], format!("act_{}", account.account_id).as_str());
        assert!(crate::AD_ACCOUNT_FIELDS.iter().all(|f| read.fields.contains_key(*f)));
    }
    assert!(world.account("1000000000000000", now).is_none());
    assert!(world.account("not an id", now).is_none());
    // A few are disabled, later.
    let disabled: Vec<_> = accounts.iter().filter(|a| a.disabled.is_some()).collect();
    assert!(!disabled.is_empty() && disabled.len() < accounts.len() / 5, "{}", disabled.len());
    for account in disabled {
        let (at, reason) = account.disabled.unwrap();
        assert!(at > account.created_us());
        assert_eq!(account.status_at(at - 1), (account_status::ACTIVE, 0));
        assert_eq!(account.status_at(at), (account_status::DISABLED, reason));
    }
}

#[test]
fn pixels_are_the_tenant_s_own() {
    let config = config();
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let pixels = world.pixels();
    assert_eq!(pixels.len(), 4);
    for pixel in &pixels {
        assert_eq!(world.pixel(&pixel.id).as_ref(), Some(pixel));
        assert!(World::new(&config, 8, EPOCH_US).unwrap().pixel(&pixel.id).is_none());
    }
    let names: std::collections::HashSet<_> = pixels.iter().map(|p| &p.name).collect();
    assert_eq!(names.len(), 4);
}

#[test]
fn caps_refuse_what_meta_refuses() {
    let config = WorldConfig { disabled_per_mille: 0, ..config() };
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let account = world.accounts(EPOCH_US + DAY_US).remove(0);
    let created = account.created_us();
    let first = account.first_segment();
    // One cent is spent within minutes, and nothing more.
    let later = created + 30 * DAY_US;
    assert_eq!(account.spent_at(&first, later).amount_spent_cents, 1);
    let refused = |result: PlatformResult<Option<Segment>>| matches!(result, Err(PlatformError::Refused { code: 100, .. }));
    assert!(refused(account.set_spend_cap(&first, 0, later)));
    assert!(refused(account.set_spend_cap(&first, -5, later)));
    assert!(refused(account.set_spend_cap(&first, SPEND_CAP_CENTS_MAX + 1, later)));
    assert_eq!(account.set_spend_cap(&first, 1, later), Ok(None));
    let raised = account.set_spend_cap(&first, 1_000_000, later).unwrap().unwrap();
    assert_eq!((raised.seq, raised.at_us, raised.cap_cents, raised.amount_spent_cents), (1, later, 1_000_000, 1));
    // A day later it spent about its daily rate, and cannot be capped below that.
    let day_later = later + DAY_US;
    let spent = account.spent_at(&raised, day_later).amount_spent_cents;
    assert!(spent > account.daily_spend_cents() / 2 && spent < account.daily_spend_cents() * 2, "{spent}");
    let Err(PlatformError::Refused { code: 100, message, .. }) = account.set_spend_cap(&raised, spent - 1, day_later) else { panic!("a cap below the spend must be refused") };
    assert!(message.contains("amount already spent"), "{message}");
    let exact = account.set_spend_cap(&raised, spent, day_later).unwrap().unwrap();
    assert_eq!(account.spent_at(&exact, day_later + 10 * DAY_US).amount_spent_cents, spent);
    // A reset: nothing spent, one cent of cap; the lifetime goes on.
    let reset = account.reset_spend_cap(&exact, day_later + 2 * DAY_US);
    assert_eq!((reset.cap_cents, reset.amount_spent_cents, reset.lifetime_spent_cents), (1, 0, spent));
    // A write before the last one applies at the last one's instant.
    assert_eq!(account.reset_spend_cap(&reset, created).at_us, reset.at_us);
}

#[test]
fn disabled_accounts_stop_spending_and_refuse_caps() {
    let config = WorldConfig { disabled_per_mille: 1_000, ..config() };
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let account = world.accounts(EPOCH_US + DAY_US).remove(0);
    let (disabled_at, _) = account.disabled.unwrap();
    let raised = account.set_spend_cap(&account.first_segment(), 100_000_000, account.created_us()).unwrap().unwrap();
    let at_disable = account.spent_at(&raised, disabled_at).amount_spent_cents;
    assert!(at_disable > 0);
    assert_eq!(account.spent_at(&raised, disabled_at + 30 * DAY_US).amount_spent_cents, at_disable);
    assert!(account.set_spend_cap(&raised, 200_000_000, disabled_at).is_err());
    // A reset is how a disabled account's unspent cap comes back.
    assert_eq!(account.reset_spend_cap(&raised, disabled_at + DAY_US).cap_cents, 1);
    assert_eq!(account.ad_account(&raised, "1", disabled_at).account_status, account_status::DISABLED);
}

#[test]
fn insights_refuse_windows_meta_refuses() {
    let config = config();
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let now = EPOCH_US + 10 * DAY_US;
    let account = world.accounts(now).remove(0);
    let today = account.zone().local_day(now);
    let refused = |w: InsightsWindow| account.daily_insights(&[], &w, now).unwrap_err();
    assert!(matches!(refused(window(date(today), date(today - 1), None)), PlatformError::Refused { code: 100, .. }));
    assert!(matches!(refused(window(date(today - 38 * 31), date(today), None)), PlatformError::Refused { code: 3018, .. }));
    assert!(matches!(refused(window(date(today), date(today), Some("device_platform"))), PlatformError::Refused { code: 100, .. }));
    // A window before the account existed, or in the future, has no rows.
    assert_eq!(account.daily_insights(&[], &window(date(today - 300), date(today - 200), None), now), Ok(Vec::new()));
    assert_eq!(account.daily_insights(&[], &window(date(today + 1), date(today + 9), None), now), Ok(Vec::new()));
}

#[test]
fn breakdowns_split_each_day_exactly() {
    let config = WorldConfig { disabled_per_mille: 0, ..config() };
    let world = World::new(&config, 7, EPOCH_US).unwrap();
    let account = world.accounts(EPOCH_US).remove(0);
    let raised = account.set_spend_cap(&account.first_segment(), 50_000_000, account.created_us()).unwrap().unwrap();
    let now = account.created_us() + 20 * DAY_US;
    let today = account.zone().local_day(now);
    let all = window(date(today - 30), date(today), None);
    let days = account.daily_insights(&[raised], &all, now).unwrap();
    assert_eq!(days.len(), 21);
    for breakdown in SYNCED_BREAKDOWNS {
        let rows = account.daily_insights(&[raised], &InsightsWindow { breakdown: Some(breakdown), ..all.clone() }, now).unwrap();
        for day in &days {
            let split: Vec<&InsightsRow> = rows.iter().filter(|r| r.day == day.day).collect();
            assert!(split.len() > 1, "{breakdown}");
            assert_eq!(split.iter().map(|r| spend_cents(r)).sum::<i64>(), spend_cents(day), "{breakdown}");
            for counted in ["impressions", "clicks", "reach", "inline_link_clicks"] {
                let sum: i64 = split.iter().map(|r| r.values[counted].as_str().unwrap().parse::<i64>().unwrap()).sum();
                assert_eq!(sum.to_string(), day.values[counted].as_str().unwrap(), "{breakdown} {counted}");
            }
            for column in breakdown.split(',') {
                assert!(split.iter().all(|r| r.values.contains_key(column)));
            }
        }
    }
    let postbacks = account.daily_insights(&[raised], &InsightsWindow { total_postbacks: true, ..all }, now).unwrap();
    assert_eq!(postbacks.len(), days.len());
    assert!(postbacks.iter().all(|r| r.values.len() == 3 && r.values.contains_key("total_postbacks")));
}

#[test]
fn thirty_seven_months_of_days_are_read_quickly() {
    let config = WorldConfig { disabled_per_mille: 0, ..config() };
    let epoch = EPOCH_US - 40 * 31 * DAY_US;
    let world = World::new(&config, 7, epoch).unwrap();
    let account = world.accounts(epoch).remove(0);
    let raised = account.set_spend_cap(&account.first_segment(), SPEND_CAP_CENTS_MAX, account.created_us()).unwrap().unwrap();
    let now = EPOCH_US;
    let today = account.zone().local_day(now);
    let since = date(today).checked_sub(37.months()).unwrap();
    let started = std::time::Instant::now();
    let rows = account.daily_insights(&[raised], &window(since, date(today), None), now).unwrap();
    let elapsed = started.elapsed();
    assert!(rows.len() > 1_100, "{}", rows.len());
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

/// A write to an account: a cap (as a multiple of its daily rate, in
/// hundredths) or a reset, some hours after the one before.
#[derive(Debug, Clone)]
enum Write {
    Cap { after_hours: i64, days_of_spend_per_cent: i64 },
    Reset { after_hours: i64 },
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let write = prop_oneof![
        4 => (0i64..200, 0i64..1_000).prop_map(|(after_hours, days_of_spend_per_cent)| Write::Cap { after_hours, days_of_spend_per_cent }),
        1 => (0i64..200).prop_map(|after_hours| Write::Reset { after_hours }),
    ];
    prop::collection::vec(write, 0..25)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the writes: the amount spent never passes the cap, the days'
    /// spend adds up to the lifetime spend, and what was spent since the last
    /// reset is the days' spend since it (its own day counted from the reset).
    #[test]
    fn daily_spend_adds_up_to_what_was_spent(seed: u64, tenant in 1i64..1_000, account_pick in 0usize..8, writes in writes(), read_after_hours in 0i64..300, disabled_per_mille in prop_oneof![Just(0u32), Just(1_000u32)]) {
        let config = WorldConfig { seed, disabled_per_mille, ..config() };
        let world = World::new(&config, tenant, EPOCH_US).unwrap();
        let accounts = world.accounts(EPOCH_US + DAY_US);
        prop_assume!(!accounts.is_empty());
        let account = &accounts[account_pick % accounts.len()];
        let mut segments = vec![account.first_segment()];
        let mut at = account.created_us();
        let mut last_reset = None;
        for write in &writes {
            let current = *segments.last().unwrap();
            match write {
                Write::Cap { after_hours, days_of_spend_per_cent } => {
                    at += after_hours * HOUR_US;
                    let spent = account.spent_at(&current, at).amount_spent_cents;
                    let cap = spent + account.daily_spend_cents() * days_of_spend_per_cent / 100;
                    match account.set_spend_cap(&current, cap.max(1), at) {
                        Ok(Some(next)) => segments.push(next),
                        Ok(None) => {}
                        Err(_) => prop_assert!(account.status_at(at).0 != account_status::ACTIVE),
                    }
                }
                Write::Reset { after_hours } => {
                    at += after_hours * HOUR_US;
                    let next = account.reset_spend_cap(&current, at);
                    last_reset = Some(next);
                    segments.push(next);
                }
            }
        }
        let now = at + read_after_hours * HOUR_US;
        // Never past the cap, at any hour.
        for (segment, next) in segments.iter().zip(segments.iter().skip(1).map(Some).chain([None])) {
            let until = next.map_or(now, |n| n.at_us);
            let mut t = segment.at_us;
            while t <= until {
                prop_assert!(account.spent_at(segment, t).amount_spent_cents <= segment.cap_cents);
                t += 7 * HOUR_US;
            }
        }
        let current = *segments.last().unwrap();
        let spent = account.spent_at(&current, now);
        let zone = account.zone();
        let today = zone.local_day(now);
        let created_day = zone.local_day(account.created_us());
        let everything = window(date(created_day - 3), date(today), None);
        // The service stores only the last segment of each day: the same rows.
        let rows = account.daily_insights(&segments, &everything, now).unwrap();
        prop_assert_eq!(&account.daily_insights(&last_of_each_day(&segments), &everything, now).unwrap(), &rows);
        let total: i64 = rows.iter().map(spend_cents).sum();
        prop_assert_eq!(total, spent.lifetime_spent_cents);
        if let Some(reset) = last_reset {
            prop_assert_eq!(total - reset.lifetime_spent_cents, spent.amount_spent_cents);
            // The reset's own day counts from the reset.
            let before_reset_day: i64 = rows.iter().filter(|r| day_number(r.day) < reset.local_day).map(spend_cents).sum();
            let since_reset_day: i64 = rows.iter().filter(|r| day_number(r.day) >= reset.local_day).map(spend_cents).sum();
            prop_assert_eq!(since_reset_day - (reset.lifetime_spent_cents - before_reset_day), spent.amount_spent_cents);
        } else {
            prop_assert_eq!(total, spent.amount_spent_cents);
        }
        // Any window is a slice of the whole.
        let middle = window(date(today - 5), date(today - 2), None);
        let slice: Vec<InsightsRow> = rows.iter().filter(|r| r.day >= middle.since && r.day <= middle.until).cloned().collect();
        prop_assert_eq!(account.daily_insights(&segments, &middle, now).unwrap(), slice);
    }
}

#[test]
fn resets_at_midnight_make_the_days_since_add_up_to_the_amount_spent() {
    let config = WorldConfig { disabled_per_mille: 0, ..config() };
    let world = World::new(&config, 3, EPOCH_US).unwrap();
    for account in world.accounts(EPOCH_US).iter().take(5) {
        let zone = account.zone();
        let raised = account.set_spend_cap(&account.first_segment(), 100_000_000, account.created_us()).unwrap().unwrap();
        let reset_day = zone.local_day(account.created_us()) + 4;
        let reset = account.reset_spend_cap(&raised, zone.day_start_us(reset_day));
        let raised_again = account.set_spend_cap(&reset, 100_000_000, zone.day_start_us(reset_day) + HOUR_US).unwrap().unwrap();
        let now = zone.day_start_us(reset_day + 6) + 5 * HOUR_US;
        let rows = account.daily_insights(&[raised, reset, raised_again], &window(date(reset_day), date(reset_day + 10), None), now).unwrap();
        assert_eq!(rows.len(), 7);
        assert_eq!(rows.iter().map(spend_cents).sum::<i64>(), account.spent_at(&raised_again, now).amount_spent_cents);
    }
}
