//! The enterprise's standard rates (UUCall `baserate`): a view of the tariffs
//! in force, one per product the tenant has a default tariff for.

use subledger_domain::money::Currency;
use subledger_domain::rating::{PriceModel, format_scaled};

use crate::Services;
use crate::catalog::{Product, TariffVersion};
use crate::error::ServiceResult;
use crate::now_us;
use crate::seats::RecurringRate;
use crate::statements::shown_price_micros;
use crate::tenants::Tenant;

/// One standard rate: a product and the price its default tariff in force sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRate {
    /// The tariff version's id (UUCall `ruleId`).
    pub rule_id: i64,
    pub product_code: String,
    /// The product's name (UUCall `name`).
    pub name: String,
    /// How it is charged, as people read it (UUCall `chargeUnit`): `0.12元/分钟`.
    pub charge_unit: String,
}

impl Services {
    /// The tenant's default tariff in force now for each product that has one,
    /// in catalog order. Per-account overrides are not the enterprise's
    /// standard and are left out.
    pub async fn base_rates(&self, tenant: &Tenant) -> ServiceResult<Vec<BaseRate>> {
        let products = self.products(tenant).await?;
        let book = self.tariff_book(tenant).await?;
        let now = now_us();
        Ok(products
            .iter()
            .filter_map(|product| {
                let in_force = book.listed(Some(&product.code)).into_iter().filter(|v| v.account.is_none() && v.effective_from_us <= now).max_by_key(|v| (v.effective_from_us, v.id))?;
                Some(base_rate(product, in_force))
            })
            .collect())
    }
}

fn base_rate(product: &Product, version: &TariffVersion) -> BaseRate {
    BaseRate { rule_id: version.id, product_code: product.code.clone(), name: product.name.clone(), charge_unit: charge_unit(product, &version.model) }
}

/// A monthly item's price as people read it (UUCall `funrate` / `hirerate`
/// `chargeUnit`), written as `baserate` writes a recurring tariff: `30元/个/月`.
pub fn recurring_charge_unit(rate: &RecurringRate) -> String {
    format!("{}{}/{}", rate.price, currency_word(rate.currency), rate.charge_unit)
}

/// The currency's word in a price (`元`, `美元`).
fn currency_word(currency: Currency) -> &'static str {
    match currency {
        Currency::Cny => "元",
        Currency::Usd => "美元",
    }
}

/// A price model as one line of text. Telephony items show their price per
/// minute or message exactly as `/balance/charges` does; other products show
/// their model's price per increment of their unit.
pub fn charge_unit(product: &Product, model: &PriceModel) -> String {
    if let Some(item) = &product.telephony
        && let Some(micros) = shown_price_micros(model, item)
    {
        return format!("{}{}", format_scaled(micros, 6), item.price_unit);
    }
    let (word, unit) = (currency_word(product.currency), product.unit.as_str());
    match model {
        PriceModel::PerUnit { price, increment } if increment.milli() == 1_000 => format!("{price}{word}/{unit}"),
        PriceModel::PerUnit { price, increment } => format!("{price}{word}/{increment}{unit}"),
        PriceModel::Recurring { price } => format!("{price}{word}/{unit}/月"),
        PriceModel::Allowance { free, price } => format!("{price}{word}/{unit}（每月免费{free}{unit}）"),
        PriceModel::Graduated { .. } => "阶梯计价".to_owned(),
        PriceModel::ByCountry { .. } => "按国家计价".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use subledger_domain::catalog::BUILTIN;
    use subledger_domain::rating::{Quantity, UnitPrice};

    use super::*;

    fn product(code: &str) -> Product {
        Product::from_builtin(BUILTIN.iter().find(|p| p.code == code).unwrap())
    }

    #[test]
    fn charge_units_read_as_prices() {
        let per_unit = |price: &str, increment: &str| PriceModel::PerUnit { price: UnitPrice::parse(price).unwrap(), increment: Quantity::parse(increment).unwrap() };
        // 0.02 per 10 s is 0.12 per minute, as the telephony dialect shows it.
        assert_eq!(charge_unit(&product("pstn_one_way"), &per_unit("0.02", "10")), "0.12元/分钟");
        assert_eq!(charge_unit(&product("email"), &per_unit("0.001", "1")), "0.001元/封");
        assert_eq!(charge_unit(&product("email"), &per_unit("0.5", "1000")), "0.5元/1000封");
        assert_eq!(charge_unit(&product("ip"), &PriceModel::Recurring { price: UnitPrice::parse("300").unwrap() }), "300元/个/月");
        let rental = RecurringRate {
            product_code: "line".to_owned(),
            name: "line".to_owned(),
            charge_unit: "条/月".to_owned(),
            price: UnitPrice::parse("25.5").unwrap(),
            currency: Currency::Cny,
            next_charge_at_us: 0,
        };
        assert_eq!(recurring_charge_unit(&rental), "25.5元/条/月");
        assert_eq!(charge_unit(&product("email_traffic"), &PriceModel::Allowance { free: Quantity::parse("100").unwrap(), price: UnitPrice::parse("0.2").unwrap() }), "0.2元/MB（每月免费100MB）");
    }
}
