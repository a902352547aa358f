-- Ad insights (issue 10): the daily rows the sync job reads from the ad
-- platform, from which `account_insights` and `account_insights_breakdowns`
-- are answered without calling it. The SQLite migration of the same number
-- creates the same schema.

-- One row per ad account, breakdown, day and breakdown value. `breakdown` is
-- '' for the account as a whole, else the synced breakdown's key (`country`,
-- `age,gender` …); `breakdown_value` is '' for the account as a whole, else
-- the values of the breakdown's columns joined with U+001F. Money in cents of
-- the account's currency; `action_lists` holds the per-action-type lists
-- (JSON text: `{"actions": [["link_click", 2000]]}`, values in hundredths;
-- '{}' when there are none). No foreign key to
-- `ad_accounts`: insights may be synced before the account's own row is.
-- Reads take a range of days of one (tenant, account, breakdown) through the
-- primary key.
CREATE TABLE ad_insights_daily (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    account_id TEXT NOT NULL,
    breakdown TEXT NOT NULL,
    day TEXT NOT NULL,
    breakdown_value TEXT NOT NULL,
    spend_cents BIGINT NOT NULL,
    impressions BIGINT NOT NULL,
    clicks BIGINT NOT NULL,
    reach BIGINT NOT NULL,
    inline_link_clicks BIGINT NOT NULL,
    total_postbacks BIGINT NOT NULL,
    action_lists TEXT NOT NULL,
    synced_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, account_id, breakdown, day, breakdown_value),
    CHECK (spend_cents >= 0 AND impressions >= 0 AND clicks >= 0 AND reach >= 0 AND inline_link_clicks >= 0 AND total_postbacks >= 0)
);
