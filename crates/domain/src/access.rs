//! Applications and permissions: who may do what.
//!
//! An application (`CustomApplication` in the UUCall spec: id, pid, name) is
//! one capability of the product, placed in a menu tree. The tree is fixed
//! and the same for every tenant ([`APPS`]; `docs/access-control.md` lists
//! it): a tenant's roles and users are granted applications of it, and every
//! endpoint of every dialect names the one leaf application it needs.
//!
//! What a sub-user may do is its role's template, plus the applications
//! granted to it, minus the ones revoked from it ([`effective_apps`]).
//! Granting a parent grants its whole subtree; a revocation beats a grant.
//! The tenant's own credentials (API token, SendCloud key) have every right.

use std::fmt;

/// An application's id, as the wire shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct AppId(pub i64);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One node of the application tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    /// The parent's id; 0 for a top-level menu.
    pub pid: i64,
    /// A stable code for documents and logs (`accounts.manage`).
    pub code: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
}

impl App {
    /// The name in a tenant's language.
    pub fn name(&self, language: Language) -> &'static str {
        match language {
            Language::Zh => self.name_zh,
            Language::En => self.name_en,
        }
    }

    pub fn is_leaf(&self) -> bool {
        !APPS.iter().any(|child| child.pid == self.id.0)
    }
}

macro_rules! apps {
    ($($konst:ident = $id:literal under $pid:literal, $code:literal, $zh:literal, $en:literal;)+) => {
        /// Every application, parents before their children.
        pub const APPS: &[App] = &[$(App { id: AppId($id), pid: $pid, code: $code, name_zh: $zh, name_en: $en }),+];
        /// The applications by name, for the code that checks them.
        pub mod app {
            use super::AppId;
            $(pub const $konst: AppId = AppId($id);)+
        }
    };
}

apps! {
    ACCOUNTS = 100 under 0, "accounts", "子帐号管理", "Sub-accounts";
    ACCOUNTS_VIEW = 101 under 100, "accounts.view", "查看子帐号", "View sub-accounts";
    ACCOUNTS_MANAGE = 102 under 100, "accounts.manage", "管理子帐号", "Manage sub-accounts";
    FUNDS = 200 under 0, "funds", "资金管理", "Funds";
    FUNDS_VIEW = 201 under 200, "funds.view", "查看余额与充值记录", "View balances and recharges";
    FUNDS_MOVE = 202 under 200, "funds.move", "充值、分账与预留", "Deposit, transfer and hold money";
    BILLING = 300 under 0, "billing", "账单", "Billing";
    BILLING_VIEW = 301 under 300, "billing.view", "查看与下载账单", "View and download bills";
    BILLING_MANAGE = 302 under 300, "billing.manage", "导入用量与月结", "Import usage and close months";
    RATES = 400 under 0, "rates", "资费", "Rates";
    RATES_VIEW = 401 under 400, "rates.view", "查看资费与时长卡", "View rates and time cards";
    RATES_MANAGE = 402 under 400, "rates.manage", "管理资费与时长卡", "Manage rates and time cards";
    NOTICES = 500 under 0, "notices", "公告", "Notices";
    NOTICES_VIEW = 501 under 500, "notices.view", "查看公告", "View notices";
    NOTICES_MANAGE = 502 under 500, "notices.manage", "管理公告", "Manage notices";
    ROLES = 600 under 0, "roles", "角色与权限", "Roles and permissions";
    ROLES_VIEW = 601 under 600, "roles.view", "查看角色与权限", "View roles and grants";
    ROLES_MANAGE = 602 under 600, "roles.manage", "管理角色与权限", "Manage roles and grants";
    OPLOG = 700 under 0, "oplog", "操作日志", "Operation log";
    OPLOG_VIEW = 701 under 700, "oplog.view", "查看操作日志", "View the operation log";
    ADS = 800 under 0, "ads", "广告账户", "Ad accounts";
    ADS_VIEW = 801 under 800, "ads.view", "查看广告账户", "View ad accounts";
    ADS_MANAGE = 802 under 800, "ads.manage", "管理广告账户", "Manage ad accounts";
    SETTINGS = 900 under 0, "settings", "企业设置", "Enterprise settings";
    SETTINGS_VIEW = 901 under 900, "settings.view", "查看企业信息", "View the enterprise";
    SETTINGS_MANAGE = 902 under 900, "settings.manage", "修改企业信息与密钥", "Change the enterprise and its secrets";
    CONSOLE = 1000 under 0, "console", "控制台", "Console";
    CONSOLE_DASHBOARD = 1001 under 1000, "console.dashboard", "控制台首页", "Console home";
}

/// The application with this id, if the tree has it.
pub fn find_app(id: AppId) -> Option<&'static App> {
    APPS.iter().find(|app| app.id == id)
}

fn index_of(id: AppId) -> Option<usize> {
    APPS.iter().position(|app| app.id == id)
}

/// A set of applications, closed downwards: holding a node means holding
/// its subtree. A bit per entry of [`APPS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AppSet(u64);

const _: () = assert!(APPS.len() <= 64, "AppSet holds a bit per application");

impl AppSet {
    pub const EMPTY: AppSet = AppSet(0);

    /// Every application.
    pub fn all() -> AppSet {
        AppSet(if APPS.len() == 64 { u64::MAX } else { (1u64 << APPS.len()) - 1 })
    }

    /// The applications named, with their subtrees; ids the tree lacks are refused.
    pub fn of(ids: impl IntoIterator<Item = AppId>) -> Result<AppSet, UnknownApp> {
        let mut set = AppSet::EMPTY;
        for id in ids {
            set = set.with(id)?;
        }
        Ok(set)
    }

    /// This set with `id` and its subtree added.
    pub fn with(self, id: AppId) -> Result<AppSet, UnknownApp> {
        let index = index_of(id).ok_or(UnknownApp(id))?;
        let mut bits = self.0 | (1 << index);
        for (child, app) in APPS.iter().enumerate() {
            if app.pid == id.0 {
                bits |= AppSet(bits).with(app.id)?.0 | (1 << child);
            }
        }
        Ok(AppSet(bits))
    }

    pub fn union(self, other: AppSet) -> AppSet {
        AppSet(self.0 | other.0)
    }

    pub fn minus(self, other: AppSet) -> AppSet {
        AppSet(self.0 & !other.0)
    }

    pub fn contains(self, id: AppId) -> bool {
        index_of(id).is_some_and(|index| self.0 & (1 << index) != 0)
    }

    /// The applications in the set, in tree order; a parent appears when
    /// any of its children does, so that a menu can be drawn from the list.
    pub fn apps(self) -> impl Iterator<Item = &'static App> {
        let leaves = self;
        APPS.iter()
            .enumerate()
            .filter(move |(index, app)| leaves.0 & (1 << index) != 0 || APPS.iter().enumerate().any(|(child, c)| c.pid == app.id.0 && leaves.0 & (1 << child) != 0))
            .map(|(_, app)| app)
    }

    /// The ids stored for this set: the leaves it holds (parents are implied).
    pub fn leaf_ids(self) -> Vec<AppId> {
        APPS.iter().enumerate().filter(|(index, app)| self.0 & (1 << index) != 0 && app.is_leaf()).map(|(_, app)| app.id).collect()
    }
}

/// An application id that is not in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("there is no application {0}")]
pub struct UnknownApp(pub AppId);

/// What a sub-user may do: its role's template (when it applies it), plus
/// its own grants, minus its own revocations.
pub fn effective_apps(role_template: Option<AppSet>, granted: AppSet, revoked: AppSet) -> AppSet {
    role_template.unwrap_or(AppSet::EMPTY).union(granted).minus(revoked)
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// The tenant's own credentials, the admin, the CLI.
    Everything,
    /// A sub-user's session.
    Only(AppSet),
}

impl Permissions {
    pub fn allows(self, app: AppId) -> bool {
        match self {
            Permissions::Everything => true,
            Permissions::Only(set) => set.contains(app),
        }
    }
}

/// A tenant's language: operation log descriptions and application names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    #[default]
    Zh,
    En,
}

impl Language {
    pub fn parse(text: &str) -> Result<Language, UnknownLanguage> {
        match text {
            "zh-CN" | "zh" => Ok(Language::Zh),
            "en" | "en-US" => Ok(Language::En),
            _ => Err(UnknownLanguage(text.chars().take(32).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh-CN",
            Language::En => "en",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?}: use zh-CN or en")]
pub struct UnknownLanguage(pub String);

/// The highest role level (UUCall `level`): levels are 0 to this.
pub const ROLE_LEVEL_MAX: i64 = 1_000_000;

crate::account::bounded_text!(
    /// A role's name: 1–50 characters, one line; unique within its tenant
    /// (the service checks that).
    RoleName, "role name", 50, crate::account::parse_display_name
);
crate::account::bounded_text!(
    /// A notice's title: 1–100 characters, one line.
    NoticeTitle, "title", 100, crate::account::parse_display_name
);
crate::account::bounded_text!(
    /// A notice's content: 1–5,000 characters, lines allowed.
    NoticeContent, "content", 5_000, crate::account::parse_free_text
);

/// Most sub-users one notice may be aimed at.
pub const NOTICE_TARGETS_MAX: usize = 1_000;

/// Parses a comma-separated list of application ids (`authAppIds`): blanks
/// between commas are skipped, at most [`APPS`]`.len()` distinct ids.
pub fn parse_app_ids(text: &str) -> Result<Vec<AppId>, UnknownApp> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = part.parse::<i64>().map(AppId).map_err(|_| UnknownApp(AppId(-1)))?;
        find_app(id).ok_or(UnknownApp(id))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_tree_is_well_formed() {
        for (index, app) in APPS.iter().enumerate() {
            assert!(APPS.iter().filter(|other| other.id == app.id).count() == 1, "{} twice", app.id);
            assert!(APPS.iter().filter(|other| other.code == app.code).count() == 1, "{} twice", app.code);
            if app.pid != 0 {
                let parent = APPS.iter().position(|p| p.id.0 == app.pid).expect("parent exists");
                assert!(parent < index, "{} comes before its parent", app.code);
                assert!(app.code.starts_with(APPS[parent].code), "{} sits under {}", app.code, APPS[parent].code);
            }
        }
    }

    #[test]
    fn a_parent_grants_its_subtree() {
        let set = AppSet::of([app::FUNDS]).unwrap();
        assert!(set.contains(app::FUNDS_VIEW) && set.contains(app::FUNDS_MOVE));
        assert!(!set.contains(app::BILLING_VIEW));
        assert_eq!(set.leaf_ids(), vec![app::FUNDS_VIEW, app::FUNDS_MOVE]);
    }

    #[test]
    fn a_revocation_beats_a_grant() {
        let role = AppSet::of([app::ACCOUNTS]).unwrap();
        let granted = AppSet::of([app::OPLOG_VIEW]).unwrap();
        let revoked = AppSet::of([app::ACCOUNTS_MANAGE]).unwrap();
        let apps = effective_apps(Some(role), granted, revoked);
        assert!(apps.contains(app::ACCOUNTS_VIEW) && apps.contains(app::OPLOG_VIEW));
        assert!(!apps.contains(app::ACCOUNTS_MANAGE));
        assert!(!effective_apps(None, granted, revoked).contains(app::ACCOUNTS_VIEW));
        // The menu shows a parent of what is held.
        assert!(apps.apps().any(|a| a.id == app::ACCOUNTS) && apps.apps().any(|a| a.id == app::OPLOG));
    }

    #[test]
    fn app_id_lists_parse_strictly() {
        assert_eq!(parse_app_ids(" 101,,102 ,101").unwrap(), vec![app::ACCOUNTS_VIEW, app::ACCOUNTS_MANAGE]);
        assert_eq!(parse_app_ids("").unwrap(), vec![]);
        assert_eq!(parse_app_ids("101,9999"), Err(UnknownApp(AppId(9999))));
        assert!(parse_app_ids("abc").is_err());
    }

    #[test]
    fn role_names_and_notices_have_limits() {
        assert_eq!(RoleName::parse(" 坐席 ").unwrap().as_str(), "坐席");
        assert_eq!(RoleName::parse("   "), Err(crate::account::TextFieldError::Empty("role name")));
        assert!(RoleName::parse(&"r".repeat(50)).is_ok());
        assert_eq!(RoleName::parse(&"r".repeat(51)), Err(crate::account::TextFieldError::Invalid("role name", 50)));
        assert!(RoleName::parse("a\nb").is_err(), "a name is one line");
        assert!(NoticeTitle::parse(&"t".repeat(101)).is_err());
        assert_eq!(NoticeContent::parse("line 1\nline 2").unwrap().as_str(), "line 1\nline 2");
        assert!(NoticeContent::parse(&"c".repeat(5_001)).is_err());
        assert!(NoticeContent::parse("\u{1b}[31m").is_err());
    }

    proptest! {
        #[test]
        fn leaves_round_trip(picks in proptest::collection::vec(0..APPS.len(), 0..12)) {
            let set = AppSet::of(picks.iter().map(|&i| APPS[i].id)).unwrap();
            let again = AppSet::of(set.leaf_ids()).unwrap();
            // Storing the leaves loses nothing a check can see.
            for app in APPS.iter().filter(|a| a.is_leaf()) {
                prop_assert_eq!(set.contains(app.id), again.contains(app.id));
            }
            prop_assert!(set.minus(set) == AppSet::EMPTY);
            prop_assert!(AppSet::all().union(set) == AppSet::all());
        }
    }
}
