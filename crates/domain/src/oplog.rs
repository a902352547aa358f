//! The operation log: who changed what, when, and with what outcome.
//!
//! Every mutating call of every dialect and of the CLI appends one
//! [`Operation`] in the transaction of its change (the service's `Change`),
//! so a change that rolls back leaves no entry and one that commits always
//! has its entry. Entries are stored structured (a [`OperationKind`], a
//! subject and a language-neutral detail) and described in the tenant's
//! language when read ([`Operation::describe`]).

use crate::access::Language;
use crate::ids::AccountId;

/// Who asked for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The tenant's own credentials (API token, SendCloud key, telephony token).
    Tenant,
    /// A sub-user, through a session.
    SubUser { account: AccountId, username: String },
    /// The administrator's token.
    Admin,
    /// The command line, on the database directly.
    Cli,
    /// subledger itself: the automatic month close.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Tenant => "tenant",
            Actor::SubUser { .. } => "sub_user",
            Actor::Admin => "admin",
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }

    /// The sub-user's name (the `subUserName` of an entry), if a sub-user acted.
    pub fn username(&self) -> Option<&str> {
        match self {
            Actor::SubUser { username, .. } => Some(username),
            _ => None,
        }
    }

    pub fn account(&self) -> Option<AccountId> {
        match self {
            Actor::SubUser { account, .. } => Some(*account),
            _ => None,
        }
    }

    /// Rebuilds an actor from its stored columns.
    pub fn from_stored(kind: &str, account: Option<AccountId>, username: Option<String>) -> Option<Actor> {
        Some(match kind {
            "tenant" => Actor::Tenant,
            "sub_user" => Actor::SubUser { account: account?, username: username? },
            "admin" => Actor::Admin,
            "cli" => Actor::Cli,
            "system" => Actor::System,
            _ => return None,
        })
    }

    fn describe(&self, language: Language) -> String {
        match (self, language) {
            (Actor::Tenant, Language::Zh) => "企业接口".to_owned(),
            (Actor::Tenant, Language::En) => "the enterprise's API".to_owned(),
            (Actor::SubUser { username, .. }, Language::Zh) => format!("子帐号 {username}"),
            (Actor::SubUser { username, .. }, Language::En) => format!("sub-user {username}"),
            (Actor::Admin, Language::Zh) => "管理员".to_owned(),
            (Actor::Admin, Language::En) => "the administrator".to_owned(),
            (Actor::Cli, Language::Zh) => "命令行".to_owned(),
            (Actor::Cli, Language::En) => "the command line".to_owned(),
            (Actor::System, Language::Zh) => "系统".to_owned(),
            (Actor::System, Language::En) => "subledger".to_owned(),
        }
    }
}

macro_rules! kinds {
    ($($variant:ident = $code:literal, $zh:literal, $en:literal;)+) => {
        /// What kind of change an entry records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum OperationKind { $($variant),+ }

        impl OperationKind {
            pub const ALL: &'static [OperationKind] = &[$(OperationKind::$variant),+];

            /// The stored code.
            pub fn code(self) -> &'static str {
                match self { $(OperationKind::$variant => $code),+ }
            }

            pub fn parse(code: &str) -> Option<OperationKind> {
                match code { $($code => Some(OperationKind::$variant),)+ _ => None }
            }

            /// The verb phrase, in a language.
            pub fn phrase(self, language: Language) -> &'static str {
                match (self, language) {
                    $((OperationKind::$variant, Language::Zh) => $zh, (OperationKind::$variant, Language::En) => $en,)+
                }
            }
        }
    };
}

kinds! {
    TenantCreate = "tenant.create", "创建企业", "created the enterprise";
    TenantUpdate = "tenant.update", "修改企业信息", "updated the enterprise";
    TenantRotateSecrets = "tenant.rotate_secrets", "更换企业密钥", "rotated the enterprise's secrets";
    AccountCreate = "account.create", "新增子帐号", "created sub-account";
    AccountUpdate = "account.update", "修改子帐号", "updated sub-account";
    AccountQuota = "account.quota", "设置每日额度", "set the daily quota of";
    AccountFreeze = "account.freeze", "冻结子帐号", "froze sub-account";
    AccountUnfreeze = "account.unfreeze", "解冻子帐号", "unfroze sub-account";
    AccountDisable = "account.disable", "禁用子帐号", "disabled sub-account";
    AccountEnable = "account.enable", "启用子帐号", "enabled sub-account";
    AccountCancel = "account.cancel", "注销子帐号", "cancelled sub-account";
    AccountBilling = "account.billing", "设置计费方式", "set the billing mode of";
    AccountFunding = "account.funding", "设置扣费来源", "set whose money pays for";
    AccountPassword = "account.password", "修改登录密码", "changed the password of";
    AccountGrants = "account.grants", "修改帐号应用权限", "changed the application grants of";
    FundsDeposit = "funds.deposit", "充值", "deposited to";
    FundsTransfer = "funds.transfer", "转账", "transferred";
    FundsOverdraft = "funds.overdraft", "设置透支额度", "set the overdraft of";
    HoldOpen = "hold.open", "预留资金", "reserved money";
    HoldPost = "hold.post", "确认预留资金", "posted hold";
    HoldVoid = "hold.void", "撤销预留资金", "voided hold";
    UsageIngest = "usage.ingest", "导入用量", "imported usage";
    BillClose = "bill.close", "月结账单", "closed the bills of";
    ProductAdd = "product.add", "新增产品", "added product";
    TariffSet = "tariff.set", "设置资费", "set the tariff of";
    TimeCardIssue = "card.issue", "发放时长卡", "issued time card";
    TimeCardCancel = "card.cancel", "作废时长卡", "cancelled time card";
    FunctionSubscribe = "function.subscribe", "开通功能", "subscribed to";
    FunctionUnsubscribe = "function.unsubscribe", "关闭功能", "unsubscribed from";
    RoleCreate = "role.create", "新增角色", "created role";
    RoleUpdate = "role.update", "修改角色", "updated role";
    RoleDelete = "role.delete", "删除角色", "deleted role";
    RoleGrants = "role.grants", "修改角色应用权限", "changed the application grants of role";
    NoticeCreate = "notice.create", "新增公告", "published notice";
    NoticeUpdate = "notice.update", "修改公告", "updated notice";
    NoticeDelete = "notice.delete", "删除公告", "deleted notice";
    SessionLogin = "session.login", "登录", "logged in";
    SessionLogout = "session.logout", "退出登录", "logged out";
    AdSpendCap = "ads.spend_cap", "修改广告账户额度", "changed the spend cap of ad account";
    AdReset = "ads.reset", "重置广告账户额度", "reset the spend of ad account";
    AdSpend = "ads.spend", "同步广告账户消耗", "recorded the spend of ad account";
    AdBindBusiness = "ads.bind_business", "绑定BM", "bound a Business Manager to ad account";
    AdUnbindBusiness = "ads.unbind_business", "解绑BM", "unbound a Business Manager from ad account";
    AdBindPixel = "ads.bind_pixel", "绑定像素", "bound a pixel to ad account";
    AdUnbindPixel = "ads.unbind_pixel", "解绑像素", "unbound a pixel from ad account";
    AdConnection = "ads.connection", "设置广告平台连接", "set the ad platform connection";
    AdBlacklist = "ads.blacklist", "设置开户公司黑名单", "set the blacklist entry of company";
    AdViolation = "ads.violation", "设置违规账户", "set the violation flag of ad account";
    AdSettings = "ads.settings", "修改广告设置", "changed the ad settings";
}

/// How a recorded change ended. A change that rolled back is not recorded
/// at all; `Refused` is a refusal that was itself stored (a transfer refused
/// under an idempotency key, a failed login that counts towards a lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Refused(String),
}

impl Outcome {
    /// The stored text: `done`, or the refusal's reason.
    pub fn as_stored(&self) -> &str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused(reason) => reason,
        }
    }

    pub fn from_stored(text: String) -> Outcome {
        if text == "done" { Outcome::Done } else { Outcome::Refused(text) }
    }
}

/// Longest subject and detail kept, in characters; longer text is cut.
pub const SUBJECT_CHARS_MAX: usize = 200;
pub const DETAIL_CHARS_MAX: usize = 500;

/// One change, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub kind: OperationKind,
    /// What was changed: a username, a role's name, a month, a transfer key.
    pub subject: String,
    /// Language-neutral particulars: amounts with their currency, counts, ids.
    pub detail: String,
}

impl Operation {
    pub fn new(kind: OperationKind, subject: impl Into<String>) -> Operation {
        Operation { kind, subject: cut(subject.into(), SUBJECT_CHARS_MAX), detail: String::new() }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Operation {
        self.detail = cut(detail.into(), DETAIL_CHARS_MAX);
        self
    }

    /// The entry as a person reads it (`opdescribe`): who did what, and
    /// how it ended unless it was done.
    pub fn describe(&self, actor: &Actor, outcome: &Outcome, language: Language) -> String {
        let mut text = format!("{} {}", actor.describe(language), self.kind.phrase(language));
        if !self.subject.is_empty() {
            text.push(' ');
            text.push_str(&self.subject);
        }
        if !self.detail.is_empty() {
            text.push_str(match language {
                Language::Zh => "（",
                Language::En => " (",
            });
            text.push_str(&self.detail);
            text.push_str(match language {
                Language::Zh => "）",
                Language::En => ")",
            });
        }
        if let Outcome::Refused(reason) = outcome {
            text.push_str(match language {
                Language::Zh => "：被拒绝，",
                Language::En => ": refused, ",
            });
            text.push_str(reason);
        }
        text
    }
}

fn cut(mut text: String, chars_max: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(chars_max) {
        text.truncate(index);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for kind in OperationKind::ALL {
            assert_eq!(OperationKind::parse(kind.code()), Some(*kind));
            assert_eq!(OperationKind::ALL.iter().filter(|k| k.code() == kind.code()).count(), 1);
        }
    }

    #[test]
    fn entries_read_in_the_tenants_language() {
        let op = Operation::new(OperationKind::FundsTransfer, "alice").with_detail("100.00 CNY");
        let actor = Actor::SubUser { account: AccountId(7), username: "bob".into() };
        assert_eq!(op.describe(&actor, &Outcome::Done, Language::Zh), "子帐号 bob 转账 alice（100.00 CNY）");
        assert_eq!(op.describe(&Actor::Tenant, &Outcome::Refused("insufficient_balance".into()), Language::En), "the enterprise's API transferred alice (100.00 CNY): refused, insufficient_balance");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let op = Operation::new(OperationKind::NoticeCreate, "公".repeat(300));
        assert_eq!(op.subject.chars().count(), SUBJECT_CHARS_MAX);
    }

    #[test]
    fn actors_round_trip() {
        for actor in [Actor::Tenant, Actor::SubUser { account: AccountId(3), username: "x".into() }, Actor::Admin, Actor::Cli, Actor::System] {
            assert_eq!(Actor::from_stored(actor.kind(), actor.account(), actor.username().map(str::to_owned)), Some(actor));
        }
    }
}
