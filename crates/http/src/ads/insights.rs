//! Spend insights: `account_insights` and `account_insights_breakdowns`.
//! The query is parsed by the domain (`subledger_domain::insights`, which
//! decides codes 1009, 1010, 1015–1019 and 1024–1026) and answered by the
//! service from synced daily rows, in Graph's row format.

use subledger_domain::insights::{BreakdownsParams, BreakdownsQuery, InsightsParams, InsightsQuery};
use subledger_service::ads::insights::insights_today;

use super::error::{Refusal, code};
use super::{Call, Codes, Reply};

pub const INSIGHTS: Codes = &[
    code::ID_MISSING,
    code::ID_INVALID,
    code::FIELDS_EMPTY,
    code::FIELDS_INVALID,
    code::UPSTREAM_TIMEOUT,
    code::TIME_RANGE,
    code::TIME_RANGE_TOO_OLD,
    code::TOTAL_POSTBACKS_ALONE,
    code::TIME_INCREMENT,
    code::TOO_MANY_DAYS,
];
pub const BREAKDOWNS: Codes = &[
    code::ID_MISSING,
    code::ID_INVALID,
    code::FIELDS_EMPTY,
    code::FIELDS_INVALID,
    code::UPSTREAM_TIMEOUT,
    code::TIME_RANGE,
    code::TIME_RANGE_TOO_OLD,
    code::TOTAL_POSTBACKS_ALONE,
    code::BREAKDOWNS,
    code::SORT,
    code::LIMIT,
];

/// `account_insights`: one row per window of the range (`time_increment`).
pub async fn insights(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let query = InsightsQuery::parse(&InsightsParams::of(&call.params.to_object()), insights_today(&call.tenant))?;
    let rows = call.state.services.ad_insights(&call.tenant, &id, &query).await?;
    Reply::data(&rows)
}

/// `account_insights_breakdowns`: one row per value of the breakdown over the range.
pub async fn breakdowns(call: Call) -> Result<Reply, Refusal> {
    let id = call.params.account_id()?;
    let query = BreakdownsQuery::parse(&BreakdownsParams::of(&call.params.to_object()), insights_today(&call.tenant))?;
    let rows = call.state.services.ad_insights_breakdowns(&call.tenant, &id, &query).await?;
    Reply::data(&rows)
}
