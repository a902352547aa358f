//! Insights: a day's metrics derived from its spend through a seeded funnel
//! (impressions from a CPM, clicks from a CTR, then landing pages, carts,
//! checkouts, purchases and their value), and split across a breakdown's
//! values so that the split rows add up exactly to the day.

use serde_json::{Map, Value, json};

use super::draw::{Draw, about};

/// The metrics of a day (or of a breakdown value's share of it), by index.
pub(crate) const SPEND: usize = 0;
const IMPRESSIONS: usize = 1;
const REACH: usize = 2;
const CLICKS: usize = 3;
const INLINE_LINK_CLICKS: usize = 4;
const LANDING_PAGE_VIEWS: usize = 5;
const CONTENT_VIEWS: usize = 6;
const ADDS_TO_CART: usize = 7;
const CHECKOUTS: usize = 8;
const PURCHASES: usize = 9;
const PURCHASE_VALUE_CENTS: usize = 10;
const POSTBACKS: usize = 11;
const METRIC_COUNT: usize = 12;

/// Which efficiency a metric's split follows across a breakdown's values
/// (spend follows the value's weight alone; purchase value and postbacks
/// follow the purchases).
const METRIC_CLASS: [usize; METRIC_COUNT] = [0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3];
const CLASS_COUNT: usize = 4;

/// Integer metrics: cents and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Metrics(pub [i64; METRIC_COUNT]);

/// An account's funnel: averages its days vary around.
#[derive(Debug, Clone)]
pub(crate) struct Funnel {
    seed: u64,
    key: u64,
    cpm_cents: i64,
    frequency_per_mille: i64,
    ctr_basis_points: i64,
    link_per_mille: i64,
    landing_per_mille: i64,
    view_per_mille: i64,
    cart_per_mille: i64,
    checkout_per_mille: i64,
    purchase_per_mille: i64,
    order_value_cents: i64,
    postback_per_mille: i64,
}

impl Funnel {
    pub(crate) fn draw(seed: u64, key: u64, draw: &mut Draw) -> Funnel {
        Funnel {
            seed,
            key,
            cpm_cents: draw.between(450, 1_500),
            frequency_per_mille: draw.between(1_050, 1_600),
            ctr_basis_points: draw.between(80, 300),
            link_per_mille: draw.between(550, 850),
            landing_per_mille: draw.between(600, 900),
            view_per_mille: draw.between(550, 900),
            cart_per_mille: draw.between(80, 200),
            checkout_per_mille: draw.between(400, 700),
            purchase_per_mille: draw.between(450, 800),
            order_value_cents: draw.between(2_500, 9_000),
            postback_per_mille: draw.between(100, 300),
        }
    }

    /// A day's metrics from its spend: each step of the funnel a share of the
    /// one before, the day's CPM, CTR and order value varying ±15%.
    pub(crate) fn day(&self, day: i64, spend_cents: i64) -> Metrics {
        let mut draw = Draw::new(self.seed, &[about::METRICS_DAY, self.key, day as u64]);
        let mut vary = |value: i64| value * draw.between(850, 1_150) / 1_000;
        let share = |count: i64, per_mille: i64| (i128::from(count) * i128::from(per_mille) / 1_000) as i64;
        let cpm = vary(self.cpm_cents).max(1);
        let ctr = vary(self.ctr_basis_points);
        let order_value = vary(self.order_value_cents);
        let impressions = (i128::from(spend_cents) * 1_000 / i128::from(cpm)) as i64;
        let clicks = (i128::from(impressions) * i128::from(ctr) / 10_000) as i64;
        let links = share(clicks, self.link_per_mille);
        let landings = share(links, self.landing_per_mille);
        let views = share(landings, self.view_per_mille);
        let carts = share(views, self.cart_per_mille);
        let checkouts = share(carts, self.checkout_per_mille);
        let purchases = share(checkouts, self.purchase_per_mille);
        let mut metrics = [0; METRIC_COUNT];
        metrics[SPEND] = spend_cents;
        metrics[IMPRESSIONS] = impressions;
        metrics[REACH] = impressions * 1_000 / self.frequency_per_mille;
        metrics[CLICKS] = clicks;
        metrics[INLINE_LINK_CLICKS] = links;
        metrics[LANDING_PAGE_VIEWS] = landings;
        metrics[CONTENT_VIEWS] = views;
        metrics[ADDS_TO_CART] = carts;
        metrics[CHECKOUTS] = checkouts;
        metrics[PURCHASES] = purchases;
        metrics[PURCHASE_VALUE_CENTS] = purchases.saturating_mul(order_value);
        metrics[POSTBACKS] = share(purchases, self.postback_per_mille);
        Metrics(metrics)
    }
}

/// Splits `total` (≥ 0) in proportion to `weights` into whole parts that add
/// up to it exactly (Hamilton's largest-remainder rule): each part is its
/// exact share rounded down, and what remains goes one by one to the parts
/// with the largest fractions (the first of equal ones first). All-zero
/// weights split equally.
pub fn apportion(total: i64, weights: &[u64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let total = total.max(0) as u128;
    let equal = vec![1u64; weights.len()];
    let weights = if weights.iter().all(|w| *w == 0) { &equal } else { weights };
    let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    let mut parts: Vec<i64> = weights.iter().map(|w| (total * u128::from(*w) / sum) as i64).collect();
    let given: i64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(total * u128::from(weights[*i]) % sum));
    for index in order.into_iter().take((total as i64 - given) as usize) {
        parts[index] += 1;
    }
    parts
}

/// A breakdown's values and how much of an account's delivery each takes
/// (relative weights).
struct Dimension {
    column: &'static str,
    values: &'static [(&'static str, u64)],
    /// Whether an account reaches only some of the values (countries, regions).
    targeted: bool,
}

const COUNTRIES: Dimension = Dimension {
    column: "country",
    values: &[
        ("US", 400),
        ("GB", 90),
        ("CA", 70),
        ("AU", 60),
        ("DE", 60),
        ("FR", 45),
        ("JP", 40),
        ("BR", 35),
        ("MX", 30),
        ("IT", 25),
        ("ES", 25),
        ("SA", 25),
        ("AE", 20),
        ("PH", 20),
        ("NL", 15),
        ("TH", 15),
    ],
    targeted: true,
};
const REGIONS: Dimension = Dimension {
    column: "region",
    values: &[
        ("California", 160),
        ("Texas", 120),
        ("Florida", 100),
        ("New York", 90),
        ("England", 80),
        ("Illinois", 50),
        ("Ontario", 50),
        ("Pennsylvania", 45),
        ("Ohio", 40),
        ("Georgia", 40),
        ("New South Wales", 40),
        ("Washington", 35),
        ("Bavaria", 25),
    ],
    targeted: true,
};
const AGES: Dimension = Dimension { column: "age", values: &[("18-24", 140), ("25-34", 320), ("35-44", 250), ("45-54", 150), ("55-64", 90), ("65+", 50)], targeted: false };
const GENDERS: Dimension = Dimension { column: "gender", values: &[("male", 460), ("female", 520), ("unknown", 20)], targeted: false };
const PLATFORMS: Dimension = Dimension { column: "publisher_platform", values: &[("facebook", 520), ("instagram", 400), ("audience_network", 50), ("messenger", 30)], targeted: false };

/// The dimensions of a breakdown (one, or two for `age,gender`); `None` for
/// a breakdown the sandbox does not know.
fn dimensions(breakdown: &str) -> Option<&'static [Dimension]> {
    const AGE_GENDER: [Dimension; 2] = [AGES, GENDERS];
    Some(match breakdown {
        "country" => std::slice::from_ref(&COUNTRIES),
        "region" => std::slice::from_ref(&REGIONS),
        "age" => std::slice::from_ref(&AGES),
        "gender" => std::slice::from_ref(&GENDERS),
        "publisher_platform" => std::slice::from_ref(&PLATFORMS),
        "age,gender" => &AGE_GENDER,
        _ => return None,
    })
}

/// Whether the sandbox can split days by this breakdown.
pub(crate) fn known_breakdown(breakdown: &str) -> bool {
    dimensions(breakdown).is_some()
}

/// One value of a breakdown (its columns and values) with its share of a
/// day's metrics.
pub(crate) struct Split {
    pub columns: Vec<(&'static str, &'static str)>,
    pub metrics: Metrics,
}

/// A day's metrics split across a breakdown's values: each value's weight is
/// its base weight × the account's leaning (targeted dimensions reach some
/// values only) × the day's variation; each metric other than spend also
/// follows the value's efficiency for that kind of metric. Every metric is
/// apportioned to the exact total. Values with nothing are left out, as
/// Graph leaves them out.
pub(crate) fn split(seed: u64, account_key: u64, breakdown: &str, day: i64, total: &Metrics) -> Vec<Split> {
    let Some(dimensions) = dimensions(breakdown) else { return Vec::new() };
    // The product of the dimensions' values (one dimension, or every pair of two).
    let mut shares = vec![Share { columns: Vec::new(), weight: 1, efficiency: [1; CLASS_COUNT] }];
    for dimension in dimensions {
        let values: Vec<Share> = (0..dimension.values.len()).map(|index| dimension.share(seed, account_key, index, day)).collect();
        shares = shares.iter().flat_map(|share| values.iter().map(move |value| share.times(value))).collect();
    }
    let mut parts = vec![Metrics::default(); shares.len()];
    for (metric, class) in METRIC_CLASS.into_iter().enumerate() {
        let weights: Vec<u64> = if metric == PURCHASE_VALUE_CENTS || metric == POSTBACKS {
            // Worth and postbacks go where the purchases went.
            parts.iter().map(|part| part.0[PURCHASES] as u64).collect()
        } else {
            shares.iter().map(|share| if class == 0 { share.weight } else { share.weight.saturating_mul(share.efficiency[class]) }).collect()
        };
        for (part, value) in parts.iter_mut().zip(apportion(total.0[metric], &weights)) {
            part.0[metric] = value;
        }
    }
    shares.into_iter().zip(parts).filter(|(_, metrics)| metrics.0.iter().any(|m| *m != 0)).map(|(share, metrics)| Split { columns: share.columns, metrics }).collect()
}

/// A breakdown value's (or pair of values') weight on one day, and its
/// efficiency for each class of metric.
struct Share {
    columns: Vec<(&'static str, &'static str)>,
    weight: u64,
    efficiency: [u64; CLASS_COUNT],
}

impl Share {
    fn times(&self, other: &Share) -> Share {
        let mut columns = self.columns.clone();
        columns.extend_from_slice(&other.columns);
        Share { columns, weight: self.weight.saturating_mul(other.weight), efficiency: std::array::from_fn(|c| self.efficiency[c].saturating_mul(other.efficiency[c])) }
    }
}

impl Dimension {
    /// The share of its `index`-th value for an account on a day.
    fn share(&self, seed: u64, account_key: u64, index: usize, day: i64) -> Share {
        let (value, base) = self.values[index];
        let mut account = Draw::new(seed, &[about::BREAKDOWN, account_key, hash_text(self.column), index as u64]);
        let reached = !self.targeted || index == 0 || account.chance(550);
        let leaning = if reached { account.between(500, 1_500) as u64 } else { 0 };
        let efficiency = std::array::from_fn(|_| account.between(700, 1_300) as u64);
        let daily = Draw::new(seed, &[about::BREAKDOWN_DAY, account_key, hash_text(self.column), index as u64, day as u64]).between(800, 1_200) as u64;
        // At most 520 × 1.5 × 1.2: products of two, and their efficiencies,
        // stay far within what apportioning multiplies.
        Share { columns: vec![(self.column, value)], weight: base * leaning * daily / 1_000_000, efficiency }
    }
}

fn hash_text(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Cents as Graph writes an amount: dollars with two decimals.
pub(crate) fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The purchase action types Graph reports (the pixel's, the cross-channel one and the plain one).
const PURCHASE_TYPES: [&str; 3] = ["purchase", "omni_purchase", "offsite_conversion.fb_pixel_purchase"];

/// An insights row's values, as Graph returns them: [`INSIGHTS_SYNC_FIELDS`]
/// (or `total_postbacks` alone), counts and amounts as strings, `actions`
/// and `action_values` as `[{action_type, value}]` without the zero ones.
///
/// [`INSIGHTS_SYNC_FIELDS`]: crate::INSIGHTS_SYNC_FIELDS
pub(crate) fn row_values(metrics: &Metrics, total_postbacks: bool) -> Map<String, Value> {
    let m = &metrics.0;
    let mut values = Map::new();
    if total_postbacks {
        values.insert("total_postbacks".into(), m[POSTBACKS].to_string().into());
        return values;
    }
    values.insert("spend".into(), dollars(m[SPEND]).into());
    for (field, index) in [("impressions", IMPRESSIONS), ("reach", REACH), ("clicks", CLICKS), ("inline_link_clicks", INLINE_LINK_CLICKS)] {
        values.insert(field.into(), m[index].to_string().into());
    }
    let counts = [
        ("link_click", m[INLINE_LINK_CLICKS]),
        ("landing_page_view", m[LANDING_PAGE_VIEWS]),
        ("view_content", m[CONTENT_VIEWS]),
        ("add_to_cart", m[ADDS_TO_CART]),
        ("initiate_checkout", m[CHECKOUTS]),
    ]
    .into_iter()
    .chain(PURCHASE_TYPES.map(|t| (t, m[PURCHASES])));
    let stats = |items: Vec<(&str, String)>| -> Option<Value> {
        (!items.is_empty()).then(|| Value::Array(items.into_iter().map(|(action_type, value)| json!({ "action_type": action_type, "value": value })).collect()))
    };
    let pixel_purchase = PURCHASE_TYPES[2];
    let fields = [
        ("actions", stats(counts.filter(|(_, n)| *n > 0).map(|(t, n)| (t, n.to_string())).collect())),
        ("action_values", stats(if m[PURCHASE_VALUE_CENTS] > 0 { PURCHASE_TYPES.map(|t| (t, dollars(m[PURCHASE_VALUE_CENTS]))).to_vec() } else { Vec::new() })),
        ("conversions", stats(if m[PURCHASES] > 0 { vec![(pixel_purchase, m[PURCHASES].to_string())] } else { Vec::new() })),
        ("conversion_values", stats(if m[PURCHASE_VALUE_CENTS] > 0 { vec![(pixel_purchase, dollars(m[PURCHASE_VALUE_CENTS]))] } else { Vec::new() })),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            values.insert(field.into(), value);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::SYNCED_BREAKDOWNS;

    proptest! {
        #[test]
        fn apportioned_parts_add_up_and_stay_within_one_of_their_share(total in 0i64..10_000_000_000, weights in prop::collection::vec(0u64..1_000_000_000, 1..20)) {
            let parts = apportion(total, &weights);
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let sum: u128 = weights.iter().map(|w| u128::from(*w)).sum();
            for (part, weight) in parts.iter().zip(&weights) {
                let exact_floor = (total as u128 * u128::from(*weight)).checked_div(sum).unwrap_or(total as u128 / weights.len() as u128);
                prop_assert!(*part as u128 == exact_floor || *part as u128 == exact_floor + 1);
            }
        }

        #[test]
        fn breakdown_rows_add_up_to_the_day(seed: u64, key: u64, day in 18_000i64..22_000, spend in 0i64..5_000_000) {
            let funnel = Funnel::draw(seed, key, &mut Draw::new(seed, &[key]));
            let total = funnel.day(day, spend);
            for breakdown in SYNCED_BREAKDOWNS {
                let rows = split(seed, key, breakdown, day, &total);
                let mut sums = Metrics::default();
                for row in &rows {
                    prop_assert_eq!(row.columns.len(), breakdown.split(',').count());
                    prop_assert!(row.metrics.0[PURCHASE_VALUE_CENTS] == 0 || row.metrics.0[PURCHASES] > 0);
                    for (sum, value) in sums.0.iter_mut().zip(row.metrics.0) {
                        *sum += value;
                    }
                }
                prop_assert_eq!(sums, total, "{}", breakdown);
            }
        }
    }

    #[test]
    fn apportionment_gives_remainders_to_the_largest_fractions() {
        assert_eq!(apportion(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(apportion(7, &[5, 3, 2]), [4, 2, 1]);
        assert_eq!(apportion(5, &[0, 0]), [3, 2]);
        assert_eq!(apportion(0, &[3, 4]), [0, 0]);
    }

    #[test]
    fn every_synced_breakdown_is_known() {
        assert!(SYNCED_BREAKDOWNS.iter().all(|b| known_breakdown(b)));
        assert!(!known_breakdown("device_platform"));
    }

    #[test]
    fn rows_read_like_graph_s() {
        let funnel = Funnel::draw(1, 2, &mut Draw::new(1, &[2]));
        let metrics = funnel.day(20_000, 1_234_567);
        let values = row_values(&metrics, false);
        assert_eq!(values["spend"], "12345.67");
        let impressions: i64 = values["impressions"].as_str().unwrap().parse().unwrap();
        assert!(impressions > 500_000, "{impressions}");
        let purchases = values["actions"].as_array().unwrap().iter().find(|a| a["action_type"] == "purchase").unwrap();
        assert!(purchases["value"].as_str().unwrap().parse::<i64>().unwrap() > 0);
        let worth: f64 = values["action_values"][0]["value"].as_str().unwrap().parse().unwrap();
        let roas = worth / 12_345.67;
        assert!((0.2..10.0).contains(&roas), "{roas}");
        assert_eq!(row_values(&metrics, true).keys().collect::<Vec<_>>(), ["total_postbacks"]);
        assert_eq!(row_values(&Metrics::default(), false).get("actions"), None);
    }
}
