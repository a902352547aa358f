-- Ad accounts (issue 10): the ad-account reseller dialect over Meta's ad
-- platform. The SQLite migration of the same number creates the same schema.

-- Two wallet purposes: `ad_cap`, one per ad account, holds what the tenant
-- funded of the account's spend cap and Meta has not spent yet; `ad_payable`,
-- the tenant's, collects what Meta reports as spent (owed upstream). An
-- `ad_cap` wallet is owned by an ad account, named by `ad_account_id`.
ALTER TABLE wallets DROP CONSTRAINT wallets_purpose_check;
ALTER TABLE wallets ADD CONSTRAINT wallets_purpose_check CHECK (purpose IN ('primary', 'promo', 'world', 'revenue', 'ad_cap', 'ad_payable'));
ALTER TABLE wallets ADD COLUMN ad_account_id TEXT;
DROP INDEX wallets_owner;
CREATE UNIQUE INDEX wallets_owner ON wallets (tenant_id, COALESCE(account_id, 0), COALESCE(ad_account_id, ''), purpose, currency);

-- Which ad platform serves a tenant, and with which credentials. A tenant
-- without a row is served by the sandbox (the row is made on first use).
CREATE TABLE ad_connections (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id),
    platform TEXT NOT NULL CHECK (platform IN ('sandbox', 'graph')),
    -- The agency's Business Manager.
    business_id TEXT NOT NULL,
    -- The system-user token, sealed with the server's key (`secrets::seal`);
    -- NULL for the sandbox.
    token_sealed TEXT,
    -- An operator's switch: unbinding Business Managers is paused (code 1022).
    unbind_business_paused BIGINT NOT NULL DEFAULT 0,
    -- The sync job's lease: one process syncs a tenant at a time.
    sync_owner TEXT,
    sync_lease_until_us BIGINT NOT NULL DEFAULT 0,
    synced_at_us BIGINT,
    sync_error TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    CHECK ((platform = 'graph') = (token_sealed IS NOT NULL))
);

-- Ad account creation requests, as last synced.
CREATE TABLE ad_requests (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    -- The form's id (oe_request_id), which `get_request_list` lists.
    id TEXT NOT NULL,
    -- Meta's AdAccountCreationRequest id.
    aac_id TEXT NOT NULL,
    status TEXT NOT NULL,
    company_name TEXT NOT NULL,
    time_created_us BIGINT NOT NULL,
    time_updated_us BIGINT NOT NULL,
    -- Every field Meta returned, as JSON.
    fields TEXT NOT NULL,
    synced_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX ad_requests_order ON ad_requests (tenant_id, time_created_us, id);
CREATE INDEX ad_requests_aac ON ad_requests (tenant_id, aac_id);

-- Ad accounts, as last synced, with the funding subledger keeps for each.
CREATE TABLE ad_accounts (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    -- Digits, without Graph's `act_`.
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The creation request (oe id) that issued it; NULL if unknown.
    request_id TEXT,
    company_name TEXT NOT NULL,
    -- Meta's account_status and disable_reason.
    meta_status BIGINT NOT NULL,
    disable_reason BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- The cap Meta has, as subledger last set or read it (cents); what the
    -- tenant funded since the last reset.
    spend_cap_cents BIGINT NOT NULL CHECK (spend_cap_cents >= 0),
    -- Spent since the last reset, as last read; moved to `ad_payable`.
    amount_spent_cents BIGINT NOT NULL CHECK (amount_spent_cents >= 0),
    -- Spent in the account's life, across resets.
    total_spent_cents BIGINT NOT NULL CHECK (total_spent_cents >= 0),
    created_time_us BIGINT NOT NULL,
    -- An operator's flag: a violation account cannot be topped up (1020).
    violation BIGINT NOT NULL DEFAULT 0,
    violation_reason TEXT NOT NULL DEFAULT '',
    -- Every field Meta returned, as JSON.
    fields TEXT NOT NULL,
    synced_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ad_accounts_created ON ad_accounts (tenant_id, created_time_us, id);

-- Business Managers and pixels bound to an ad account, as last synced or set.
CREATE TABLE ad_account_businesses (
    tenant_id BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    business_id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- JSON array of strings.
    permitted_tasks TEXT NOT NULL,
    PRIMARY KEY (tenant_id, account_id, business_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES ad_accounts (tenant_id, id)
);
CREATE TABLE ad_account_pixels (
    tenant_id BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    pixel_id TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, account_id, pixel_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES ad_accounts (tenant_id, id)
);

-- Companies an operator blacklisted (1021): level 1 today, 2 seven days,
-- 3 fourteen days, 4 for ever; a level past its end counts as 0.
CREATE TABLE ad_blacklist (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    company_name TEXT NOT NULL,
    level BIGINT NOT NULL CHECK (level BETWEEN 1 AND 4),
    since_us BIGINT NOT NULL,
    -- NULL for level 4.
    until_us BIGINT,
    reason TEXT NOT NULL,
    PRIMARY KEY (tenant_id, company_name),
    CHECK ((level = 4) = (until_us IS NULL))
);

-- Every write of the dialect, by its search_id (the idempotency key; one is
-- made up when the caller sends none): what it asked, how far it went, and
-- the outcome a replay answers. A spend cap change moves money in two
-- phases: `reserved` (the hold exists), `calling` (Meta is being asked),
-- `unknown` (Meta's answer was lost: the recovery job reads the cap back),
-- `done`.
CREATE TABLE ad_writes (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    search_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    -- The request's parameters, hashed: a search_id reused for another request is refused.
    fingerprint TEXT NOT NULL,
    account_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'reserved', 'calling', 'unknown', 'done')),
    -- Spend cap changes: the cap before and the cap asked for (cents), and the hold.
    cap_before_cents BIGINT,
    cap_after_cents BIGINT,
    hold_id BIGINT,
    -- The outcome a replay answers, once done (`AdWriteOutcome`), and its detail.
    outcome TEXT,
    message TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, search_id),
    CHECK ((state = 'done') = (outcome IS NOT NULL))
);
-- One money change at a time per ad account.
CREATE UNIQUE INDEX ad_writes_one_in_flight ON ad_writes (tenant_id, account_id) WHERE state <> 'done' AND cap_after_cents IS NOT NULL;
CREATE INDEX ad_writes_unsettled ON ad_writes (updated_at_us) WHERE state <> 'done';
