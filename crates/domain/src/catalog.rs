//! The built-in product catalog: every `orderType` of the SendCloud spec's
//! table (spec 000) and the telephony items of spec 002, on one list.
//!
//! A product's `code` is its stable name in the native API. Its `order_type`
//! is the line code of SendCloud bills. `supplement` and `refund` are the
//! `orderType` codes of its family's 补扣 (supplementary charge) and 返账
//! (refund) lines; where the table has no refund code for a family, refunds
//! are posted under the supplement code with a negative amount, and where it
//! has neither, under 15 人工补扣. Telephony items carry the names, pay type
//! and group that the telephony dialect shows.
//!
//! Every built-in product is priced in [`BUILTIN_CURRENCY`] (yuan): they are
//! the SendCloud and telephony catalogs, whose wire formats show yuan. A
//! tenant's own products name their currency.

use serde::Serialize;

use crate::money::Currency;
use crate::rating::Grouping;

/// The currency of every built-in product.
pub const BUILTIN_CURRENCY: Currency = Currency::Cny;

/// How a product is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Metered: usage events, rated as they arrive.
    Usage,
    /// A monthly function fee per subscribed account (call recording, IVR,
    /// CRM …; UUCall `funrate`), charged at month close.
    Function,
    /// A monthly rental per subscribed account (a line, a number; UUCall
    /// `hirerate`), charged at month close.
    Rental,
    /// The monthly fee of a seat (a tenant-funded account): the built-in
    /// [`SEAT_PRODUCT`] only.
    Seat,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Usage => "usage",
            ProductKind::Function => "function",
            ProductKind::Rental => "rental",
            ProductKind::Seat => "seat",
        }
    }

    /// The kinds a tenant's own product may have (the seat is built in).
    pub fn parse(text: &str) -> Option<ProductKind> {
        [ProductKind::Usage, ProductKind::Function, ProductKind::Rental].into_iter().find(|k| k.as_str() == text)
    }

    /// Billed by subscription at month close, priced by a `recurring` tariff
    /// as a price per month, never by usage events.
    pub fn is_monthly_fee(self) -> bool {
        !matches!(self, ProductKind::Usage)
    }
}

/// Where a product's money shows in UUCall's charge bills: the columns of
/// the basic bill (`day_seat`, `day_callin`, `day_callout`,
/// `day_intvoice`, `day_sms`), the function bill, or neither (`Other`:
/// counted in the basic total only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BillCategory {
    Seat,
    CallIn,
    CallOut,
    InternalVoice,
    Sms,
    /// Function fees and rentals: the function bill.
    Function,
    Other,
}

impl BillCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            BillCategory::Seat => "seat",
            BillCategory::CallIn => "call_in",
            BillCategory::CallOut => "call_out",
            BillCategory::InternalVoice => "internal_voice",
            BillCategory::Sms => "sms",
            BillCategory::Function => "function",
            BillCategory::Other => "other",
        }
    }

    /// The categories a tenant's metered product may be given (seat and
    /// function follow from the product's kind).
    pub fn parse_usage(text: &str) -> Option<BillCategory> {
        [BillCategory::CallIn, BillCategory::CallOut, BillCategory::InternalVoice, BillCategory::Sms, BillCategory::Other].into_iter().find(|c| c.as_str() == text)
    }

    /// A category of calls: what time cards can cover (when priced per minute).
    pub fn is_voice(self) -> bool {
        matches!(self, BillCategory::CallIn | BillCategory::CallOut | BillCategory::InternalVoice)
    }

    /// The category of a product of this kind given `usage_category` for a metered one.
    pub fn of_kind(kind: ProductKind, usage_category: BillCategory) -> BillCategory {
        match kind {
            ProductKind::Usage => usage_category,
            ProductKind::Function | ProductKind::Rental => BillCategory::Function,
            ProductKind::Seat => BillCategory::Seat,
        }
    }
}

/// The built-in product of a seat's monthly fee (`day_seat`).
pub const SEAT_PRODUCT: &str = "seat";

/// The group a telephony item is listed under (`charges`, `getConsumerInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TelephonyGroup {
    Pstn,
    Voip,
    Messages,
}

impl TelephonyGroup {
    pub const ALL: [TelephonyGroup; 3] = [TelephonyGroup::Pstn, TelephonyGroup::Voip, TelephonyGroup::Messages];

    /// The key of the `charges` answer.
    pub fn key(self) -> &'static str {
        match self {
            TelephonyGroup::Pstn => "pstn",
            TelephonyGroup::Voip => "voip",
            TelephonyGroup::Messages => "messages",
        }
    }

    /// The group's name in `getConsumerInfo`.
    pub fn title(self) -> &'static str {
        match self {
            TelephonyGroup::Pstn => "PSTN语音",
            TelephonyGroup::Voip => "VOIP服务",
            TelephonyGroup::Messages => "短信、语音验证",
        }
    }
}

/// How a telephony item shows: its name, pay type, unit and overview category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TelephonyItem {
    pub group: TelephonyGroup,
    pub name: &'static str,
    /// `时长` (duration) or `数量` (count), as `charges` shows it.
    pub pay_type: &'static str,
    /// `条数` for counted items in `getConsumerInfo`; the pay type otherwise.
    pub statement_pay_type: &'static str,
    pub price_unit: &'static str,
    /// The key `getConsumerOverview` sums it under (spec 002 spells 单项/双项).
    pub overview: &'static str,
}

/// One product of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Product {
    pub code: &'static str,
    /// SendCloud `orderType` of its bill lines.
    pub order_type: i64,
    /// `desc` of its bill lines.
    pub name: &'static str,
    /// `component` of its bill lines: the unit of the billed quantity.
    pub unit: &'static str,
    /// What the quantity of a usage event means (for documentation and the API).
    pub quantity_meaning: &'static str,
    pub grouping: Grouping,
    /// What its tariffs price in, its usage is charged in and its bills are in.
    pub currency: Currency,
    pub supplement: i64,
    pub refund: Option<i64>,
    pub telephony: Option<TelephonyItem>,
    pub kind: ProductKind,
    pub category: BillCategory,
}

/// 人工补扣: the supplementary code of products whose family has none.
pub const MANUAL_SUPPLEMENT: i64 = 15;

const fn product(code: &'static str, order_type: i64, name: &'static str, unit: &'static str, quantity_meaning: &'static str) -> Product {
    Product {
        code,
        order_type,
        name,
        unit,
        quantity_meaning,
        grouping: Grouping::None,
        currency: BUILTIN_CURRENCY,
        supplement: MANUAL_SUPPLEMENT,
        refund: None,
        telephony: None,
        kind: ProductKind::Usage,
        category: BillCategory::Other,
    }
}

/// A call product of UUCall's basic bill without a telephony item.
const fn seat_call(code: &'static str, name: &'static str, category: BillCategory) -> Product {
    Product { supplement: 34, category, ..product(code, 13, name, "分钟", "call duration in seconds (billed per started increment)") }
}

const fn call(code: &'static str, name: &'static str, group: TelephonyGroup, overview: &'static str) -> Product {
    Product {
        code,
        order_type: 13,
        name,
        unit: "分钟",
        quantity_meaning: "call duration in seconds (billed per started increment)",
        grouping: Grouping::None,
        currency: BUILTIN_CURRENCY,
        supplement: 34,
        refund: None,
        telephony: Some(TelephonyItem { group, name, pay_type: "时长", statement_pay_type: "时长", price_unit: "元/分钟", overview }),
        kind: ProductKind::Usage,
        category: BillCategory::CallOut,
    }
}

const fn verification_code(code: &'static str, name: &'static str) -> Product {
    Product {
        code,
        order_type: 13,
        name,
        unit: "条",
        quantity_meaning: "verification calls placed",
        grouping: Grouping::None,
        currency: BUILTIN_CURRENCY,
        supplement: 34,
        refund: None,
        telephony: Some(TelephonyItem { group: TelephonyGroup::Messages, name, pay_type: "数量", statement_pay_type: "条数", price_unit: "元/条", overview: "语音验证" }),
        kind: ProductKind::Usage,
        category: BillCategory::CallOut,
    }
}

/// The built-in products, in `orderType` order, then the telephony-only items.
pub const BUILTIN: &[Product] = &[
    Product { supplement: 5, refund: Some(6), ..product("email", 1, "邮件费用", "封", "e-mails sent") },
    Product { grouping: Grouping::Item, ..product("ip", 2, "IP费用", "个", "one per dedicated IP in use (attribute item = the IP, type = 国内/海外)") },
    product("virtual_deduction", 3, "虚拟扣费", "次", "deductions"),
    product("postal", 4, "邮寄费用", "次", "mailings"),
    Product {
        supplement: 14,
        refund: Some(37),
        telephony: Some(TelephonyItem {
            group: TelephonyGroup::Messages, name: "（国内）短信（下行）", pay_type: "数量", statement_pay_type: "条数", price_unit: "元/条", overview: "短信"
        }),
        category: BillCategory::Sms,
        ..product("sms", 10, "短信费用", "条", "messages sent")
    },
    Product { supplement: 32, category: BillCategory::Sms, ..product("mms", 11, "彩信费用", "条", "messages sent") },
    Product { supplement: 33, grouping: Grouping::Country, category: BillCategory::Sms, ..product("intl_sms", 12, "国际短信费用", "条", "messages sent (attribute country = country id)") },
    Product { supplement: 34, category: BillCategory::CallOut, ..product("voice", 13, "语音费用", "分钟", "call duration in seconds") },
    product("netease", 16, "网易通费用", "封", "e-mails sent"),
    product("sina", 17, "新浪通费用", "封", "e-mails sent"),
    product("overseas", 20, "海外通费用", "封", "e-mails sent"),
    product("splus_email_content", 21, "S+邮件内容", "封", "e-mails"),
    product("splus_email_log", 22, "S+邮件日志", "封", "e-mails"),
    Product { category: BillCategory::Sms, ..product("sms_notice", 25, "短信通知费用", "条", "messages sent") },
    product("masked_storage", 28, "脱敏存储费用", "MB", "megabytes stored"),
    Product { grouping: Grouping::Item, ..product("netease_fixed_ip", 29, "网易通固定IP费用", "个", "one per fixed IP in use (attribute item = the IP)") },
    product("email_traffic", 30, "邮件流量费用", "MB", "megabytes of e-mail traffic"),
    product("address_grading", 35, "地址分级费用", "次", "lookups"),
    product("sms_short_link", 36, "短信短链接费用", "条", "links"),
    product("sms_task", 38, "短信任务功能费用", "次", "tasks"),
    product("splus_sms_content", 39, "S+短信内容", "条", "messages"),
    product("workflow_email", 40, "工作流邮件费用", "封", "e-mails sent"),
    Product { supplement: 56, ..product("sms_pack_use", 48, "短信增量包使用", "条", "messages sent from a package") },
    Product { supplement: 57, ..product("email_pack_use", 49, "邮件增量包使用", "封", "e-mails sent from a package") },
    product("sms_pack_buy", 50, "购买短信增量包", "个", "packages bought"),
    product("email_pack_buy", 51, "购买邮件增量包", "个", "packages bought"),
    Product { supplement: 55, category: BillCategory::Sms, ..product("video_sms", 54, "影信费用", "条", "messages sent") },
    product("netease_annual", 58, "网易年审代缴", "次", "annual reviews"),
    call("pstn_one_way", "(国内)(运营商)单向外呼", TelephonyGroup::Pstn, "单项外呼"),
    call("pstn_one_way_hidden", "(国内)(运营商)单向外呼（隐号）", TelephonyGroup::Pstn, "单项外呼"),
    call("pstn_two_way", "(国内)(运营商)双向外呼", TelephonyGroup::Pstn, "双项外呼"),
    call("pstn_two_way_hidden", "(国内)(运营商)双向外呼（隐号）", TelephonyGroup::Pstn, "双项外呼"),
    call("voip", "互联网语音（IP呼入，PSTN呼出）", TelephonyGroup::Voip, "互联网语音"),
    verification_code("voice_code_shown", "（标准）语音验证码（显号）"),
    verification_code("voice_code_hidden", "（标准）语音验证码（隐号）"),
    // UUCall's seat items (spec 003, basic bill): inbound and internal calls
    // beside the outbound ones above, and the seat's monthly fee.
    seat_call("call_in", "呼入通话", BillCategory::CallIn),
    seat_call("internal_voice", "内部通话", BillCategory::InternalVoice),
    Product { kind: ProductKind::Seat, category: BillCategory::Seat, ..product(SEAT_PRODUCT, 60, "坐席费用", "个", "billed by subscription: each tenant-funded account's seat, per month") },
];

/// The adjustment codes of the table (补扣 and 返账) with their descriptions:
/// they name bill lines, not products.
pub const ADJUSTMENTS: &[(i64, &str)] = &[
    (5, "邮件补扣"),
    (6, "邮件返账"),
    (14, "短信补扣"),
    (15, "人工补扣"),
    (32, "彩信补扣"),
    (33, "国际短信补扣"),
    (34, "语音补扣"),
    (37, "短信返账"),
    (55, "影信补扣"),
    (56, "短信增量包补扣"),
    (57, "邮件增量包补扣"),
];

pub fn builtin(code: &str) -> Option<&'static Product> {
    BUILTIN.iter().find(|p| p.code == code)
}

/// Description of an adjustment code (`邮件补扣` …).
pub fn adjustment_name(order_type: i64) -> &'static str {
    ADJUSTMENTS.iter().find(|(code, _)| *code == order_type).map_or("人工补扣", |(_, name)| name)
}

/// The description of a product's supplementary (补扣) lines: the table's
/// name for its code, or, for a code of the tenant's own, the product's name
/// + 补扣.
pub fn supplement_name(order_type: i64, product_name: &str) -> String {
    adjustment_description(order_type, product_name, "补扣")
}

/// The description of a product's refund (返账) lines, named like its
/// supplementary lines: 37 is 短信返账, a code of the tenant's own
/// 传真封面费用 → 传真封面返账.
pub fn refund_name(order_type: i64, product_name: &str) -> String {
    adjustment_description(order_type, product_name, "返账")
}

fn adjustment_description(order_type: i64, product_name: &str, suffix: &str) -> String {
    match ADJUSTMENTS.iter().find(|(code, _)| *code == order_type) {
        Some((_, name)) => (*name).to_owned(),
        None => format!("{}{suffix}", product_name.trim_end_matches("费用")),
    }
}

/// Overview categories of `getConsumerOverview`, in the spec's order.
pub const OVERVIEW_CATEGORIES: [&str; 5] = ["单项外呼", "互联网语音", "语音验证", "短信", "双项外呼"];

/// A product code: 2–40 characters, lowercase ASCII letters, digits and `_`,
/// a letter first (tenant products use the same shape as built-ins).
pub fn is_valid_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    (2..=40).contains(&bytes.len()) && bytes[0].is_ascii_lowercase() && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustment_lines_are_named_by_the_table_or_after_the_product() {
        assert_eq!(supplement_name(14, "短信费用"), "短信补扣");
        assert_eq!(supplement_name(15, "传真费用"), "人工补扣");
        assert_eq!(supplement_name(911, "传真封面费用"), "传真封面补扣");
        assert_eq!(refund_name(37, "短信费用"), "短信返账");
        assert_eq!(refund_name(6, "邮件费用"), "邮件返账");
        assert_eq!(refund_name(912, "传真封面费用"), "传真封面返账");
    }

    #[test]
    fn every_refund_code_of_the_table_belongs_to_its_family() {
        // The table's 返账 codes and the product whose 补扣 family each belongs to.
        let refunds: Vec<i64> = ADJUSTMENTS.iter().filter(|(_, name)| name.ends_with("返账")).map(|(code, _)| *code).collect();
        assert_eq!(refunds, [6, 37]);
        for p in BUILTIN {
            let expected = match p.supplement {
                5 => Some(6),   // 邮件补扣 → 邮件返账
                14 => Some(37), // 短信补扣 → 短信返账
                _ => None,
            };
            assert_eq!(p.refund, expected, "{}", p.code);
            if let Some(refund) = p.refund {
                assert!(adjustment_name(refund).ends_with("返账"), "{}", p.code);
            }
        }
        assert!(refunds.iter().all(|code| BUILTIN.iter().any(|p| p.refund == Some(*code))), "every 返账 code is some product's");
    }

    #[test]
    fn the_catalog_covers_the_spec_tables() {
        // Every orderType of spec 000 is either a product or an adjustment.
        let table = [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 20, 21, 22, 25, 28, 29, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40, 48, 49, 50, 51, 54, 55, 56, 57, 58];
        for code in table {
            let known = BUILTIN.iter().any(|p| p.order_type == code) || ADJUSTMENTS.iter().any(|(a, _)| *a == code);
            assert!(known, "orderType {code}");
        }
        // Every telephony item of spec 002.
        let telephony: Vec<&str> = BUILTIN.iter().filter_map(|p| p.telephony.map(|t| t.name)).collect();
        assert_eq!(telephony.len(), 8);
        for group in TelephonyGroup::ALL {
            assert!(BUILTIN.iter().any(|p| p.telephony.is_some_and(|t| t.group == group)));
        }
        // Codes are unique and well formed; supplements name adjustments.
        for (i, p) in BUILTIN.iter().enumerate() {
            assert!(is_valid_code(p.code), "{}", p.code);
            assert!(BUILTIN[i + 1..].iter().all(|q| q.code != p.code), "{} twice", p.code);
            assert!(ADJUSTMENTS.iter().any(|(a, _)| *a == p.supplement), "{}", p.code);
        }
        assert_eq!(builtin("email").map(|p| (p.order_type, p.unit, p.supplement, p.refund)), Some((1, "封", 5, Some(6))));
        assert_eq!(adjustment_name(37), "短信返账");
        assert!(!is_valid_code("Email") && !is_valid_code("1x") && !is_valid_code("a"));
    }
}
