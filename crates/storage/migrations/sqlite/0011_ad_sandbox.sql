-- The sandbox ad platform (issue 10): Meta simulated inside subledger for the
-- tenants that have not configured the Graph API. Only what the sandbox was
-- told is stored; everything that follows from the seed and the clock
-- (creation requests, their review, ad accounts, spend, insights) is
-- computed. The PostgreSQL migration of the same number creates the same schema.

-- A tenant's sandbox world starts at its epoch: the instant it was first used.
CREATE TABLE ad_sandbox_tenants (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants (id),
    epoch_us INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL
);

-- Each ad account's spend segment in force, once it was written to: from
-- `at_us` on it spends under `cap_cents`, having spent `amount_spent_cents`
-- since its last reset and `lifetime_spent_cents` in its life at `at_us`.
-- `seq` counts the writes (cap changes and resets); a write applies only over
-- the `seq` it read. An account without a row is in its first segment (a cap
-- of one cent from its creation).
CREATE TABLE ad_sandbox_spend (
    tenant_id INTEGER NOT NULL REFERENCES ad_sandbox_tenants (tenant_id),
    account_id TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    at_us INTEGER NOT NULL,
    -- The local day of `at_us` in the account's time zone (days since 1970-01-01).
    local_day INTEGER NOT NULL,
    cap_cents INTEGER NOT NULL CHECK (cap_cents >= 1),
    amount_spent_cents INTEGER NOT NULL,
    lifetime_spent_cents INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, account_id),
    CHECK (amount_spent_cents >= 0 AND amount_spent_cents <= cap_cents),
    CHECK (lifetime_spent_cents >= amount_spent_cents)
);

-- The last segment of each local day on which an account's segment changed
-- (written with `ad_sandbox_spend`, whose checks it copies), so that the spend
-- of any day, the difference of lifetime spend at its two ends, is read from
-- one row per day at most however many writes the day had.
CREATE TABLE ad_sandbox_spend_days (
    tenant_id INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    local_day INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    cap_cents INTEGER NOT NULL,
    amount_spent_cents INTEGER NOT NULL,
    lifetime_spent_cents INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, account_id, local_day),
    FOREIGN KEY (tenant_id, account_id) REFERENCES ad_sandbox_spend (tenant_id, account_id)
);

-- Business Managers an ad account is shared with and pixels shared with it,
-- where they differ from the start (the agency's own Business Manager bound,
-- nothing else): `bound` says which way.
CREATE TABLE ad_sandbox_bindings (
    tenant_id INTEGER NOT NULL REFERENCES ad_sandbox_tenants (tenant_id),
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('business', 'pixel')),
    target_id TEXT NOT NULL,
    bound INTEGER NOT NULL CHECK (bound IN (0, 1)),
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, account_id, kind, target_id)
);
