//! What a creation request says about the company behind it: a Chinese
//! legal entity with its English name, address, website, registration id,
//! vertical and contact, drawn from tables of real-looking parts.

use serde_json::{Value, json};

use super::draw::Draw;

struct City {
    zh: &'static str,
    en: &'static str,
    /// Province (empty for the municipalities).
    province: &'static str,
    districts: &'static [&'static str],
    /// The administrative division code that starts registration ids.
    division: &'static str,
    zip: &'static str,
}

const CITIES: [City; 10] = [
    City { zh: "深圳市", en: "Shenzhen", province: "广东省", districts: &["南山区", "福田区", "龙岗区", "宝安区", "龙华区"], division: "440300", zip: "518000" },
    City { zh: "广州市", en: "Guangzhou", province: "广东省", districts: &["天河区", "越秀区", "番禺区", "白云区"], division: "440100", zip: "510000" },
    City { zh: "杭州市", en: "Hangzhou", province: "浙江省", districts: &["西湖区", "滨江区", "余杭区", "拱墅区"], division: "330100", zip: "310000" },
    City { zh: "上海市", en: "Shanghai", province: "", districts: &["浦东新区", "徐汇区", "闵行区", "静安区"], division: "310000", zip: "200000" },
    City { zh: "北京市", en: "Beijing", province: "", districts: &["朝阳区", "海淀区", "丰台区"], division: "110000", zip: "100000" },
    City { zh: "厦门市", en: "Xiamen", province: "福建省", districts: &["思明区", "湖里区", "集美区"], division: "350200", zip: "361000" },
    City { zh: "义乌市", en: "Yiwu", province: "浙江省金华市", districts: &["稠城街道", "福田街道", "北苑街道"], division: "330782", zip: "322000" },
    City { zh: "东莞市", en: "Dongguan", province: "广东省", districts: &["南城街道", "东城街道", "松山湖"], division: "441900", zip: "523000" },
    City { zh: "宁波市", en: "Ningbo", province: "浙江省", districts: &["鄞州区", "海曙区", "江北区"], division: "330200", zip: "315000" },
    City { zh: "成都市", en: "Chengdu", province: "四川省", districts: &["高新区", "武侯区", "锦江区"], division: "510100", zip: "610000" },
];

/// Trade names: Chinese and pinyin.
const BRANDS: [(&str, &str); 20] = [
    ("星辰", "Xingchen"),
    ("博达", "Boda"),
    ("海纳", "Haina"),
    ("云帆", "Yunfan"),
    ("启航", "Qihang"),
    ("锐思", "Ruisi"),
    ("盛世", "Shengshi"),
    ("恒通", "Hengtong"),
    ("优品", "Youpin"),
    ("智联", "Zhilian"),
    ("领航", "Linghang"),
    ("华腾", "Huateng"),
    ("青木", "Qingmu"),
    ("鼎新", "Dingxin"),
    ("易购", "Yigou"),
    ("乐享", "Lexiang"),
    ("天择", "Tianze"),
    ("远景", "Yuanjing"),
    ("卓越", "Zhuoyue"),
    ("蓝海", "Lanhai"),
];

struct Industry {
    zh: &'static str,
    en: &'static str,
    /// Meta's `vertical` and `subvertical` (AdAccountCreationRequest enums).
    vertical: &'static str,
    subvertical: &'static str,
    /// The word ad account names and websites carry.
    tag: &'static str,
    /// Whether the company promotes an app.
    app: bool,
}

const INDUSTRIES: [Industry; 8] = [
    Industry { zh: "电子商务", en: "E-commerce", vertical: "ECOMMERCE", subvertical: "APPAREL_AND_ACCESSORIES", tag: "shop", app: false },
    Industry { zh: "网络科技", en: "Network Technology", vertical: "TECHNOLOGY", subvertical: "SOFTWARE", tag: "tech", app: true },
    Industry { zh: "进出口贸易", en: "Import and Export Trading", vertical: "ECOMMERCE", subvertical: "HOUSEHOLD_GOODS", tag: "trade", app: false },
    Industry { zh: "服饰", en: "Apparel", vertical: "RETAIL", subvertical: "APPAREL_AND_ACCESSORIES", tag: "fashion", app: false },
    Industry { zh: "互动娱乐", en: "Interactive Entertainment", vertical: "GAMING", subvertical: "MOBILE_AND_SOCIAL", tag: "games", app: true },
    Industry { zh: "电子", en: "Electronics", vertical: "ECOMMERCE", subvertical: "CONSUMER_ELECTRONICS", tag: "gadget", app: false },
    Industry { zh: "家居用品", en: "Home Goods", vertical: "RETAIL", subvertical: "HOME_AND_OFFICE", tag: "home", app: false },
    Industry { zh: "美妆", en: "Cosmetics", vertical: "ECOMMERCE", subvertical: "BEAUTY_AND_PERSONAL_CARE", tag: "beauty", app: false },
];

const ROADS: [&str; 10] = ["科技园路", "深南大道", "中山路", "人民路", "创业路", "文三路", "滨海大道", "建设路", "解放路", "长江路"];
const BUILDINGS: [&str; 8] = ["科技大厦", "国际商务中心", "创新大厦", "金融中心", "电商产业园", "创意园", "数码大厦", "中心广场"];
const SURNAMES: [(&str, &str); 10] = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("周", "zhou"), ("吴", "wu")];
const GIVEN_NAMES: [(&str, &str); 12] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("磊", "lei"),
    ("洋", "yang"),
    ("婷", "ting"),
    ("强", "qiang"),
    ("杰", "jie"),
    ("晓明", "xiaoming"),
    ("海涛", "haitao"),
];
/// The characters of a unified social credit code (no I, O, S, V, Z).
const CREDIT_CODE_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// What ad account names say after the trade name.
const MARKETS: [&str; 6] = ["US", "EU", "GLOBAL", "UK", "JP", "SEA"];

/// The company behind a creation request.
#[derive(Debug, Clone)]
pub(crate) struct Company {
    pub legal_name: String,
    pub english_name: String,
    pub address: String,
    pub address_in_english: Value,
    pub website: String,
    pub registration_id: String,
    pub vertical: &'static str,
    pub subvertical: &'static str,
    pub contact: Value,
    pub promotes_app: bool,
    /// For the names of its ad accounts.
    brand: &'static str,
    market: &'static str,
}

impl Company {
    pub(crate) fn draw(draw: &mut Draw) -> Company {
        let city = draw.pick(&CITIES);
        let (brand_zh, brand) = *draw.pick(&BRANDS);
        let industry = draw.pick(&INDUSTRIES);
        let district = draw.pick(city.districts);
        let road = draw.pick(&ROADS);
        let number = draw.between(1, 999);
        let building = draw.pick(&BUILDINGS);
        let floor = draw.between(2, 32);
        let room = draw.between(1, 20);
        let address = format!("{}{}{district}{road}{number}号{building}{floor}楼{floor}{room:02}室", city.province, city.zh);
        let mut code = format!("91{}", city.division);
        for _ in 0..10 {
            code.push(*draw.pick(CREDIT_CODE_CHARS) as char);
        }
        let (surname, surname_pinyin) = *draw.pick(&SURNAMES);
        let (given, given_pinyin) = *draw.pick(&GIVEN_NAMES);
        let domain = format!("{}-{}.com", brand.to_lowercase(), industry.tag);
        Company {
            legal_name: format!("{}{brand_zh}{}有限公司", city.zh, industry.zh),
            english_name: format!("{} {brand} {} Co., Ltd.", city.en, industry.en),
            address,
            address_in_english: json!({
                "street1": format!("Room {floor}{room:02}, No. {number}"),
                "city": city.en,
                "country": "CN",
                "postal_code": city.zip,
            }),
            website: format!("https://www.{domain}"),
            registration_id: code,
            vertical: industry.vertical,
            subvertical: industry.subvertical,
            contact: json!({ "name": format!("{surname}{given}"), "email": format!("{given_pinyin}.{surname_pinyin}@{domain}") }),
            promotes_app: industry.app,
            brand,
            market: MARKETS[draw.below(MARKETS.len() as u64) as usize],
        }
    }

    /// The name requested for its `slot`-th ad account.
    pub(crate) fn account_name(&self, slot: u32) -> String {
        format!("{}-{}-{:02}", self.brand, self.market, slot + 1)
    }
}

/// Why a request was disapproved: (reason, note), as Meta words them.
pub(crate) const DISAPPROVAL_REASONS: [(&str, &str); 5] = [
    ("WEBSITE_NOT_WORKING", "The website provided could not be reached or does not load."),
    ("BUSINESS_INFO_NOT_VERIFIED", "The legal entity name does not match the business registration document."),
    ("POLICY_VIOLATION", "The products promoted on the website do not comply with Advertising Standards."),
    ("PAGE_NOT_PUBLISHED", "The promotable Page is unpublished or restricted."),
    ("DUPLICATE_REQUEST", "A request for the same business is already under review."),
];

/// What a request must change: (field, reason, note).
pub(crate) const CHANGE_REASONS: [(&str, &str, &str); 4] = [
    ("official_website_url", "WEBSITE_INCOMPLETE", "The website must show contact details and a privacy policy."),
    ("business_registration", "DOCUMENT_UNCLEAR", "Upload a clear, complete copy of the business license."),
    ("promotable_page_ids", "PAGE_MISMATCH", "The promotable Page must belong to the requesting business."),
    ("address_in_local_language", "ADDRESS_MISMATCH", "The address must match the one on the business license."),
];

/// Names of the pixels a tenant's sandbox owns.
pub(crate) const PIXEL_NAMES: [&str; 8] = ["Shop Pixel", "Brand Site Pixel", "Checkout Pixel", "Landing Pages Pixel", "App Events Pixel", "Catalog Pixel", "Lead Forms Pixel", "Campaign Pixel"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companies_look_real() {
        let mut draw = Draw::new(3, &[1]);
        for _ in 0..50 {
            let company = Company::draw(&mut draw);
            assert!(company.legal_name.ends_with("有限公司"), "{}", company.legal_name);
            assert!(company.english_name.ends_with("Co., Ltd."));
            assert_eq!(company.registration_id.len(), 18);
            assert!(company.website.starts_with("https://www.") && company.website.ends_with(".com"));
            assert!(company.contact["email"].as_str().is_some_and(|e| e.contains('@')));
            assert!(company.account_name(0).ends_with("-01"));
        }
    }
}
