-- Metering, rating and billing: tenant products, effective-dated tariffs,
-- usage events and their rollups, month closes, bills and settlements.

-- How an account pays for usage: debited per event, or at month close.
ALTER TABLE accounts ADD COLUMN billing_mode TEXT NOT NULL DEFAULT 'prepaid' CHECK (billing_mode IN ('prepaid', 'postpaid'));

-- Products a tenant adds to the built-in catalog (which lives in code).
CREATE TABLE products (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    order_type INTEGER NOT NULL,
    grouping TEXT NOT NULL CHECK (grouping IN ('none', 'country', 'item')),
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

-- A price for a product, in force from an instant: for the tenant's accounts
-- (account_id NULL) or one account (an override). The model is JSON (see
-- domain::rating::PriceModel). Versions are never edited: a change is a new row.
CREATE TABLE tariffs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    account_id INTEGER REFERENCES accounts (id),
    product_code TEXT NOT NULL,
    effective_from_us INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at_us INTEGER NOT NULL
);
CREATE UNIQUE INDEX tariffs_version ON tariffs (tenant_id, product_code, COALESCE(account_id, 0), effective_from_us);

-- Every event ever received, with its first outcome (for idempotency and audit).
CREATE TABLE usage_events (
    tenant_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    account_id INTEGER,
    username TEXT NOT NULL,
    product_code TEXT NOT NULL,
    quantity_milli INTEGER NOT NULL,
    occurred_at_us INTEGER NOT NULL,
    attributes TEXT,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    rejection TEXT,
    billable_milli INTEGER,
    rated_micros INTEGER,
    charge_cents INTEGER,
    ingested_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, event_id),
    CHECK ((status = 'accepted') = (rejection IS NULL))
);

-- Accepted usage per account, product, grouping value (country id, item, or
-- '') and tenant calendar day / month, kept as events arrive: bills and
-- statements never read raw events.
CREATE TABLE usage_daily (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    product_code TEXT NOT NULL,
    day TEXT NOT NULL,
    attr TEXT NOT NULL,
    quantity_milli INTEGER NOT NULL,
    billable_milli INTEGER NOT NULL,
    events INTEGER NOT NULL,
    rated_micros INTEGER NOT NULL,
    charged_cents INTEGER NOT NULL,
    PRIMARY KEY (account_id, product_code, day, attr)
);
CREATE INDEX usage_daily_tenant_day ON usage_daily (tenant_id, day);

CREATE TABLE usage_monthly (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    product_code TEXT NOT NULL,
    month TEXT NOT NULL,
    attr TEXT NOT NULL,
    quantity_milli INTEGER NOT NULL,
    billable_milli INTEGER NOT NULL,
    events INTEGER NOT NULL,
    rated_micros INTEGER NOT NULL,
    charged_cents INTEGER NOT NULL,
    -- Set when usage arrives after the month was closed: the next close adds
    -- a supplementary line for it and clears the flag.
    late INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, product_code, month, attr)
);
CREATE INDEX usage_monthly_tenant_month ON usage_monthly (tenant_id, month);
CREATE INDEX usage_monthly_late ON usage_monthly (tenant_id) WHERE late = 1;

-- A closed month: its bills are final; usage for it that arrives later lands
-- on a later bill.
CREATE TABLE month_closes (
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    month TEXT NOT NULL,
    closed_at_us INTEGER NOT NULL,
    accounts INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

CREATE TABLE bills (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    month TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (account_id, month)
);
CREATE INDEX bills_tenant_month ON bills (tenant_id, month);

CREATE TABLE bill_lines (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    month TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('usage', 'supplement')),
    for_month TEXT NOT NULL,
    product_code TEXT NOT NULL,
    order_type INTEGER NOT NULL,
    description TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity_milli INTEGER NOT NULL,
    money_cents INTEGER NOT NULL,
    previous_quantity_milli INTEGER,
    previous_money_cents INTEGER,
    detail TEXT NOT NULL,
    PRIMARY KEY (account_id, month, line_no)
);

-- What a close posted to settle an account's product: the billed amount
-- minus what was charged in real time and settled before. 'outstanding' when
-- the wallets could not pay it; the next close tries again.
CREATE TABLE settlements (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    product_code TEXT NOT NULL,
    month TEXT NOT NULL,
    order_type INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('posted', 'outstanding')),
    transfer_id INTEGER,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (account_id, product_code, month)
);
