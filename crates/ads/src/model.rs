//! What the ad platform answers, in Meta's terms. Field names follow the
//! Graph API objects (`AdAccountCreationRequest`, `AdAccount`, `Business`,
//! `AdsPixel`, `AdsInsights`) as the `facebook-business` SDK defines them.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The spend cap Meta leaves on an account after `spend_cap_action=reset`:
/// $0.01, i.e. nothing more can be spent until the cap is raised again.
pub const RESET_SPEND_CAP_CENTS: i64 = 1;

/// Meta's `account_status` values (AdAccount).
pub mod account_status {
    pub const ACTIVE: i64 = 1;
    pub const DISABLED: i64 = 2;
    pub const UNSETTLED: i64 = 3;
    pub const PENDING_RISK_REVIEW: i64 = 7;
    pub const PENDING_SETTLEMENT: i64 = 8;
    pub const IN_GRACE_PERIOD: i64 = 9;
    pub const PENDING_CLOSURE: i64 = 100;
    pub const CLOSED: i64 = 101;
    pub const ANY_ACTIVE: i64 = 201;
    pub const ANY_CLOSED: i64 = 202;
}

/// The review statuses of an `AdAccountCreationRequest`, as Meta names them.
pub const REQUEST_STATUSES: [&str; 10] =
    ["pending", "under_review", "approved", "auto_approved", "disapproved", "auto_disapproved", "requested_change", "appeal_under_review", "appeal_approved", "appeal_disapproved"];

/// Whether a request in this status has been approved (its ad accounts exist).
pub fn request_approved(status: &str) -> bool {
    matches!(status, "approved" | "auto_approved" | "appeal_approved")
}

/// The fields read of every ad account (Graph `fields=`), and so the fields
/// `account_info` can answer.
pub const AD_ACCOUNT_FIELDS: [&str; 14] =
    ["id", "account_id", "name", "account_status", "disable_reason", "currency", "spend_cap", "amount_spent", "balance", "created_time", "timezone_id", "timezone_name", "business", "owner"];

/// An ad account as Meta describes it. Money is in the account's minor unit
/// (cents for USD), as Graph reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdAccount {
    /// Digits only, without Graph's `act_` prefix.
    pub account_id: String,
    pub name: String,
    /// One of [`account_status`].
    pub account_status: i64,
    pub disable_reason: i64,
    pub currency: String,
    /// 0 means no cap at Meta.
    pub spend_cap_cents: i64,
    /// Spent since the last reset.
    pub amount_spent_cents: i64,
    /// Instant of creation, microseconds since the epoch.
    pub created_time_us: i64,
    pub timezone_id: i64,
    /// Every field Meta returned (of [`AD_ACCOUNT_FIELDS`]), as returned.
    pub fields: Map<String, Value>,
}

/// One ad account requested in a creation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedAdAccount {
    pub name: String,
    pub timezone_id: i64,
    pub currency: String,
}

/// An ad account creation request (Graph `AdAccountCreationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreationRequest {
    /// Meta's id of the creation request.
    pub id: String,
    /// The reseller's form id (`oe_request_id`), which the dialect lists; Meta's id when absent.
    pub oe_request_id: String,
    /// One of [`REQUEST_STATUSES`].
    pub status: String,
    pub time_created_us: i64,
    /// When the status last changed (or the request was created).
    pub time_updated_us: i64,
    /// The legal entity in the local language (Chinese): the company that opens the accounts.
    pub legal_entity_name: String,
    /// The ad accounts issued for it (approved requests only): (account id, name).
    pub ad_accounts: Vec<(String, String)>,
    /// Every field Meta returned, as returned (`ad_accounts_info`, `contact`,
    /// `disapproval_reasons`, `request_change_reasons`, `vertical_v2` …).
    pub fields: Map<String, Value>,
}

/// A Business Manager an ad account is shared with (`/act_{id}/agencies`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Business {
    pub id: String,
    pub name: String,
    pub permitted_tasks: Vec<String>,
}

/// A pixel (`AdsPixel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pixel {
    pub id: String,
    pub name: String,
}

/// The breakdowns synced for every account, one insights call each; a
/// breakdown of two dimensions is written with a comma, as Graph takes it.
pub const SYNCED_BREAKDOWNS: [&str; 6] = ["country", "region", "age", "gender", "age,gender", "publisher_platform"];

/// The metrics synced per day (Graph `fields=`). `total_postbacks` can only be
/// asked alone, so it is read in a call of its own.
pub const INSIGHTS_SYNC_FIELDS: [&str; 9] = ["spend", "impressions", "clicks", "reach", "inline_link_clicks", "actions", "action_values", "conversions", "conversion_values"];

/// Which daily insights to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightsWindow {
    pub since: Date,
    pub until: Date,
    /// `None`, or one of [`SYNCED_BREAKDOWNS`].
    pub breakdown: Option<&'static str>,
    /// Read `total_postbacks` (alone) instead of [`INSIGHTS_SYNC_FIELDS`].
    pub total_postbacks: bool,
}

/// One day of insights (and one breakdown value, when the window has a
/// breakdown), as Graph returns it: `date_start` = `date_stop` = the day;
/// `values` holds the metrics (`spend` as a decimal string in the account's
/// currency, counts as strings, `actions` as `[{action_type, value}]`) and
/// the breakdown's columns (e.g. `country`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsightsRow {
    pub day: Date,
    pub values: Map<String, Value>,
}
