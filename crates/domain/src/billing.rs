//! Bill lines, computed from month rollups. Pure.
//!
//! A month's bill has one **usage line** per product used: its exact cost
//! with the breakdown (tiers, countries, items, allowance). Usage that arrives
//! for a month already billed adds a **supplementary line** to the next bill:
//! the recomputed month minus what that month's bill already counted, with
//! `previous` holding what was counted (spec 000's `lastMonthAmount` and
//! `lastMonthMoney`). It is a 补扣 when the month now costs more, and a 返账
//! (refund) when it costs less (a tariff version dated back into the month
//! after it was billed): spec 000's table says 返账 amounts are negative, so
//! the line keeps its negative money and the bill's total stays the sum of its
//! lines. Every line's money is its detail's money, rounded once.
//!
//! Which cost is exact: models priced per event (per unit, per country) cost
//! the sum of what each event was rated when it was ingested, under the tariff
//! then in force; models priced on the month (graduated, recurring, allowance)
//! cost the month's total under the tariff in force at the end of the month.
//!
//! That end-of-month tariff may price the month past [`crate::rating::MONTH_MICROS_MAX`]
//! (it can differ from the one the events were rated with): the line is then
//! [`AmountTooLarge`], never a saturated or wrapped amount.

use serde::Serialize;

use crate::decimal::div_round_half_up;
use crate::money::{AmountTooLarge, Currency};
use crate::rating::{DetailLine, MICROS_PER_CENT, MILLI, PriceModel, Quantity, UnitPrice, amount_micros, micros_to_cents, month_cost};
use crate::usage::MonthRollup;

/// What a bill line needs to know about its product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProduct {
    pub code: String,
    pub order_type: i64,
    pub name: String,
    pub unit: String,
    /// What its lines' money is in.
    pub currency: Currency,
    pub supplement_order_type: i64,
    pub supplement_name: String,
    /// `orderType` of its 返账 lines; `None`: its refunds are 补扣 lines
    /// with a negative amount, as its settlements are.
    pub refund_order_type: Option<i64>,
}

impl LineProduct {
    /// The `orderType` and description of an adjustment of `money_cents`:
    /// a refund (negative) under the product's 返账 code when it has one,
    /// anything else under its 补扣 code.
    pub fn adjustment(&self, money_cents: i64) -> (i64, String) {
        match self.refund_order_type {
            Some(refund) if money_cents < 0 => (refund, crate::catalog::refund_name(refund, &self.name)),
            _ => (self.supplement_order_type, self.supplement_name.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Usage,
    Supplement,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Usage => "usage",
            LineKind::Supplement => "supplement",
        }
    }
}

/// One line of a month's bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillLine {
    pub kind: LineKind,
    pub product_code: String,
    /// The product's currency: the bill it belongs on is the account's bill
    /// of the month in this currency.
    pub currency: Currency,
    pub order_type: i64,
    pub description: String,
    pub unit: String,
    /// The month the usage belongs to (the bill's own month for usage lines).
    pub for_month: String,
    /// Billable quantity (for a supplement: what it adds): what money pays for.
    pub quantity: Quantity,
    /// Minutes time cards covered (usage lines of per-minute voice products;
    /// see `timecards`), beside `quantity`, which money paid for.
    pub card: Quantity,
    pub money_micros: i64,
    pub money_cents: i64,
    /// For a supplement: what the earlier bills counted, quantity and cents.
    pub previous: Option<(Quantity, i64)>,
    pub detail: Vec<DetailLine>,
}

/// Puts a bill's lines in the order bills show them: this month's usage by
/// `orderType`, then supplements for earlier months, oldest month first.
pub fn sort_lines(lines: &mut [BillLine]) {
    lines.sort_by(|a, b| (a.kind, &a.for_month, a.order_type, &a.product_code).cmp(&(b.kind, &b.for_month, b.order_type, &b.product_code)));
}

/// The unit price a detail line shows: the listed one when it explains the
/// money, otherwise (the price changed within the month, so events were
/// rated at different prices) the average the events paid, so that
/// `price × count` still gives the line's money.
fn shown_price(listed: UnitPrice, count: Quantity, money_micros: i64) -> UnitPrice {
    if count.milli() == 0 || amount_micros(count, listed) == Ok(money_micros) {
        return listed;
    }
    let average = div_round_half_up(i128::from(money_micros) * i128::from(MILLI), i128::from(count.milli()));
    i64::try_from(average).ok().and_then(UnitPrice::from_micros).unwrap_or(listed)
}

/// The exact cost of a product's month: (money in micros, breakdown,
/// billable quantity), the money at most [`crate::rating::MONTH_MICROS_MAX`].
pub fn month_amount(rollup: &MonthRollup, model: Option<&PriceModel>) -> Result<(i64, Vec<DetailLine>, Quantity), AmountTooLarge> {
    // `totals` keeps the rated sum and the quantities within the month's limits.
    let totals = rollup.totals()?;
    let quantity = |milli| Quantity::from_milli(milli).ok_or(AmountTooLarge("a month's quantity"));
    let billable = quantity(totals.billable_milli)?;
    Ok(match model {
        Some(model @ PriceModel::Recurring { .. }) => {
            // The quantity of a rental is how many items were rented.
            let usage = rollup.usage()?;
            let cost = month_cost(model, &usage)?;
            let items = i64::try_from(usage.items.len()).ok().and_then(Quantity::units).ok_or(AmountTooLarge("a month's items"))?;
            (cost.total_micros, cost.detail, items)
        }
        Some(model) if model.is_monthly() => {
            let cost = month_cost(model, &rollup.usage()?)?;
            (cost.total_micros, cost.detail, billable)
        }
        Some(PriceModel::ByCountry { .. }) => {
            let detail: Vec<DetailLine> = rollup
                .by_attr
                .iter()
                .map(|(attr, amounts)| {
                    let country_id = attr.parse().unwrap_or_default();
                    let named = model.and_then(|m| m.country_price(country_id));
                    let count = quantity(amounts.billable_milli)?;
                    Ok(DetailLine::Country {
                        country_id,
                        name: named.map(|p| p.name.clone()).unwrap_or_default(),
                        price: shown_price(named.map(|p| p.price).unwrap_or_default(), count, amounts.rated_micros),
                        count,
                        money_micros: amounts.rated_micros,
                    })
                })
                .collect::<Result<_, AmountTooLarge>>()?;
            (totals.rated_micros, detail, billable)
        }
        Some(PriceModel::PerUnit { price, .. }) => {
            (totals.rated_micros, vec![DetailLine::Units { count: billable, price: shown_price(*price, billable, totals.rated_micros), money_micros: totals.rated_micros }], billable)
        }
        // No tariff in force at the end of the month: what the events were rated.
        _ => (totals.rated_micros, vec![DetailLine::Units { count: billable, price: shown_price(UnitPrice::default(), billable, totals.rated_micros), money_micros: totals.rated_micros }], billable),
    })
}

/// The usage line of a product for the bill's own month.
pub fn usage_line(product: &LineProduct, month: &str, rollup: &MonthRollup, model: Option<&PriceModel>) -> Result<BillLine, AmountTooLarge> {
    let (money_micros, detail, quantity) = month_amount(rollup, model)?;
    Ok(BillLine {
        kind: LineKind::Usage,
        product_code: product.code.clone(),
        currency: product.currency,
        order_type: product.order_type,
        description: product.name.clone(),
        unit: product.unit.clone(),
        for_month: month.to_owned(),
        quantity,
        card: Quantity::from_milli(rollup.totals()?.card_milli).ok_or(AmountTooLarge("a month's card minutes"))?,
        money_micros,
        money_cents: micros_to_cents(money_micros),
        previous: None,
        detail,
    })
}

/// The supplementary line for usage that arrived after `for_month` was
/// billed: the recomputed month minus what earlier bills counted, a 补扣 or,
/// when that is negative, a 返账 ([`LineProduct::adjustment`]). `None` when
/// nothing changed.
pub fn supplement_line(
    product: &LineProduct,
    bill_month: &str,
    for_month: &str,
    rollup: &MonthRollup,
    model: Option<&PriceModel>,
    previous: (Quantity, i64),
) -> Result<Option<BillLine>, AmountTooLarge> {
    let (money_micros, detail, quantity) = month_amount(rollup, model)?;
    // `previous` is what stored bills counted: checked like everything else.
    let too_large = || AmountTooLarge("a supplement");
    let money_cents = micros_to_cents(money_micros).checked_sub(previous.1).ok_or_else(too_large)?;
    let money_micros = previous.1.checked_mul(MICROS_PER_CENT).and_then(|counted| money_micros.checked_sub(counted)).ok_or_else(too_large)?;
    // Both quantities are at most QUANTITY_MILLI_MAX: the difference fits.
    let added = Quantity::from_milli((quantity.milli() - previous.0.milli()).max(0)).unwrap_or_default();
    if money_cents == 0 && added.milli() == 0 {
        return Ok(None);
    }
    let label = if crate::calendar::Month::parse_dashed(bill_month).ok().map(|m| m.previous().to_string()).as_deref() == Some(for_month) { "上月".to_owned() } else { format!("{for_month} ") };
    let (order_type, name) = product.adjustment(money_cents);
    Ok(Some(BillLine {
        kind: LineKind::Supplement,
        product_code: product.code.clone(),
        currency: product.currency,
        order_type,
        description: format!("{label}{name}"),
        unit: product.unit.clone(),
        for_month: for_month.to_owned(),
        quantity: added,
        // Card minutes show on the month's usage line; a supplement re-rates money only.
        card: Quantity::default(),
        money_micros,
        money_cents,
        previous: Some(previous),
        detail,
    }))
}

#[cfg(test)]
mod shown_price_tests {
    use super::*;

    #[test]
    fn the_listed_price_unless_the_month_was_rated_at_several() {
        let q = |t: &str| Quantity::parse(t).unwrap();
        let p = |t: &str| UnitPrice::parse(t).unwrap();
        // 10 messages at 0.05: the listed price explains the money.
        assert_eq!(shown_price(p("0.05"), q("10"), 500_000), p("0.05"));
        // 4 at 0.05 and 6 at 0.08 (a new price from mid-month): 0.68 over 10 = 0.068.
        assert_eq!(shown_price(p("0.08"), q("10"), 680_000), p("0.068"));
        // Averages round half up to the micro: 1.00 over 3 = 0.333333.
        assert_eq!(shown_price(p("0.5"), q("3"), 1_000_000), p("0.333333"));
        assert_eq!(shown_price(p("0.5"), q("0"), 0), p("0.5"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::Tier;
    use crate::usage::RollupAmounts;

    fn email() -> LineProduct {
        LineProduct {
            code: "email".into(),
            order_type: 1,
            name: "邮件费用".into(),
            unit: "封".into(),
            currency: Currency::Cny,
            supplement_order_type: 5,
            supplement_name: "邮件补扣".into(),
            refund_order_type: Some(6),
        }
    }

    fn tiers() -> PriceModel {
        let q = |t| Quantity::parse(t).unwrap();
        let p = |t| UnitPrice::parse(t).unwrap();
        PriceModel::Graduated {
            tiers: vec![Tier { min: q("0"), max: Some(q("200000")), unit: q("0"), price: p("1399.00") }, Tier { min: q("200000"), max: Some(q("100000000")), unit: q("1000"), price: p("5.00") }],
        }
    }

    fn rollup(count: i64) -> MonthRollup {
        MonthRollup { by_attr: [(String::new(), RollupAmounts { billable_milli: count * 1000, quantity_milli: count * 1000, ..RollupAmounts::default() })].into() }
    }

    /// Spec 000, billDetail: 上月邮件补扣 — 295,952 e-mails cost 1,399 + 96 × 5 = 1,879.00;
    /// 290,466 were billed for 1,854.00; the supplement adds 5,486 e-mails for 25.00.
    #[test]
    fn supplement_reproduces_the_spec_example() {
        let units = |n| Quantity::units(n).unwrap();
        let line = supplement_line(&email(), "2023-03", "2023-02", &rollup(295_952), Some(&tiers()), (units(290_466), 185_400)).unwrap().unwrap();
        assert_eq!(line.money_cents, 2_500);
        assert_eq!(line.quantity, units(5_486));
        assert_eq!(line.order_type, 5);
        assert_eq!(line.description, "上月邮件补扣");
        assert_eq!(line.detail.iter().map(DetailLine::money_micros).sum::<i64>(), 1_879_000_000);
        assert!(supplement_line(&email(), "2023-03", "2023-02", &rollup(295_952), Some(&tiers()), (units(295_952), 187_900)).unwrap().is_none());
        let older = supplement_line(&email(), "2023-05", "2023-02", &rollup(295_952), Some(&tiers()), (units(290_466), 185_400)).unwrap().unwrap();
        assert_eq!(older.description, "2023-02 邮件补扣");
    }

    /// The spec's month re-rated under a cheaper tariff dated back into it
    /// (1,299 + 96 × 5.00 = 1,779.00) after it was billed 1,854.00 for
    /// 290,466 e-mails: the 5,486 late e-mails make a 返账 of −75.00.
    #[test]
    fn a_cheaper_month_is_a_refund_line() {
        let units = |n| Quantity::units(n).unwrap();
        let mut cheaper = tiers();
        let PriceModel::Graduated { tiers } = &mut cheaper else { unreachable!() };
        tiers[0].price = UnitPrice::parse("1299.00").unwrap();
        let line = supplement_line(&email(), "2023-03", "2023-02", &rollup(295_952), Some(&cheaper), (units(290_466), 185_400)).unwrap().unwrap();
        assert_eq!((line.kind, line.order_type, line.description.as_str()), (LineKind::Supplement, 6, "上月邮件返账"));
        assert_eq!((line.quantity, line.money_cents, line.money_micros), (units(5_486), -7_500, -75_000_000));
        assert_eq!(line.previous, Some((units(290_466), 185_400)));
        assert_eq!(line.detail.iter().map(DetailLine::money_micros).sum::<i64>(), 1_779_000_000, "the whole month, re-rated");

        // A product without a 返账 code: a 补扣 line with a negative amount.
        let no_refund = LineProduct { refund_order_type: None, ..email() };
        let line = supplement_line(&no_refund, "2023-05", "2023-02", &rollup(295_952), Some(&cheaper), (units(290_466), 185_400)).unwrap().unwrap();
        assert_eq!((line.order_type, line.description.as_str(), line.money_cents), (5, "2023-02 邮件补扣", -7_500));

        // A tenant's own 返账 code is named after the product.
        let fax = LineProduct { name: "传真封面费用".into(), refund_order_type: Some(912), ..email() };
        assert_eq!(fax.adjustment(-1), (912, "传真封面返账".to_owned()));
        // Nothing to refund: a late event that changes no money is a 补扣 of 0.00.
        assert_eq!(fax.adjustment(0), (5, "邮件补扣".to_owned()));
    }

    #[test]
    fn lines_are_in_their_products_currency() {
        let units = |n| Quantity::units(n).unwrap();
        let ads = LineProduct { code: "ad_spend".into(), currency: Currency::Usd, ..email() };
        assert_eq!(usage_line(&ads, "2023-02", &rollup(10), Some(&tiers())).unwrap().currency, Currency::Usd);
        let late = supplement_line(&ads, "2023-03", "2023-02", &rollup(295_952), Some(&tiers()), (units(290_466), 185_400)).unwrap().unwrap();
        assert_eq!(late.currency, Currency::Usd);
        assert_eq!(usage_line(&email(), "2023-02", &rollup(10), Some(&tiers())).unwrap().currency, Currency::Cny);
    }

    #[test]
    fn usage_lines_sum_their_detail() {
        let line = usage_line(&email(), "2023-02", &rollup(299_155), Some(&tiers())).unwrap();
        assert_eq!(line.money_micros, line.detail.iter().map(DetailLine::money_micros).sum::<i64>());
        assert_eq!(line.money_cents, 139_900 + 100 * 500);
        // Per-event models cost what their events were rated.
        let mut sms = rollup(10);
        sms.by_attr.get_mut("").unwrap().rated_micros = 330_000;
        let per_unit = PriceModel::PerUnit { price: UnitPrice::parse("0.033").unwrap(), increment: Quantity::parse("1").unwrap() };
        assert_eq!(usage_line(&email(), "2023-02", &sms, Some(&per_unit)).unwrap().money_cents, 33);
    }
}
