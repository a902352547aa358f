-- Foundation: tenants, accounts, wallets, the append-only ledger, quota counters.
-- Every instant is microseconds since the Unix epoch (UTC); every amount is an
-- integer of minor units (分 / cents). The PostgreSQL migration of the same
-- number creates the same schema.

CREATE TABLE server_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    app_id TEXT NOT NULL UNIQUE,
    -- The SendCloud signing key. The MD5 scheme needs the key itself on both
    -- sides, so unlike tokens and passwords it cannot be stored as a hash.
    app_key TEXT NOT NULL,
    api_token_sha256 TEXT NOT NULL UNIQUE,
    account_limit INTEGER NOT NULL CHECK (account_limit >= 0),
    default_daily_quota INTEGER NOT NULL CHECK (default_daily_quota >= 0),
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    username TEXT NOT NULL,
    user_type INTEGER NOT NULL CHECK (user_type IN (0, 1)),
    status INTEGER NOT NULL CHECK (status IN (1, -1)),
    phone TEXT,
    email TEXT,
    company_name TEXT,
    company_url TEXT,
    password_hash TEXT,
    api_user TEXT,
    api_key_sha256 TEXT,
    daily_quota INTEGER NOT NULL CHECK (daily_quota >= 0),
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    UNIQUE (tenant_id, username)
);
CREATE UNIQUE INDEX accounts_tenant_phone ON accounts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE UNIQUE INDEX accounts_api_user ON accounts (api_user) WHERE api_user IS NOT NULL;

CREATE TABLE wallets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    -- NULL for the tenant's own wallets and its system wallets.
    account_id INTEGER REFERENCES accounts (id),
    purpose TEXT NOT NULL CHECK (purpose IN ('primary', 'promo', 'world', 'revenue')),
    currency TEXT NOT NULL,
    balance_minor INTEGER NOT NULL,
    -- The lowest balance allowed (0, or minus an overdraft); NULL = unbounded.
    floor_minor INTEGER,
    -- Sequence number of the last entry; entries are numbered 1, 2, 3 … per wallet.
    entry_seq INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    CHECK (floor_minor IS NULL OR balance_minor >= floor_minor)
);
CREATE UNIQUE INDEX wallets_owner ON wallets (tenant_id, COALESCE(account_id, 0), purpose, currency);
CREATE INDEX wallets_account ON wallets (account_id) WHERE account_id IS NOT NULL;

-- The ledger tables carry no foreign keys, on purpose. They are written by
-- one code path only (the ledger batch), which has locked and checked every
-- wallet it names; and foreign-key checks on the hot path cost more than the
-- write itself (PostgreSQL runs a query per row and share-locks the parent,
-- turning a tenant's row into a MultiXact under load). `subledger ledger
-- verify` checks the same references over the whole ledger.
CREATE TABLE transfers (
    -- Assigned by the ledger batch: on SQLite the next after the largest, under
    -- the write lock; on PostgreSQL from the sequence transfer_ids.
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    idempotency_key TEXT,
    -- Digest of what was asked, to tell a replay from a reused key.
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('posted', 'rejected')),
    rejection TEXT,
    kind TEXT NOT NULL,
    debit_wallet_id INTEGER NOT NULL,
    credit_wallet_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency TEXT NOT NULL,
    memo TEXT,
    created_at_us INTEGER NOT NULL,
    -- The entries a posted transfer appended: (debit_wallet_id, debit_seq)
    -- and (credit_wallet_id, credit_seq), found by the entries' primary key.
    debit_seq INTEGER,
    credit_seq INTEGER,
    CHECK ((status = 'posted') = (rejection IS NULL)),
    CHECK ((status = 'posted') = (debit_seq IS NOT NULL AND credit_seq IS NOT NULL))
);
CREATE UNIQUE INDEX transfers_idempotency ON transfers (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE entries (
    wallet_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL,
    transfer_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor <> 0),
    balance_after_minor INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, seq)
);

-- History is never edited.
CREATE TRIGGER entries_append_only_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER entries_append_only_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER transfers_append_only_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;
CREATE TRIGGER transfers_append_only_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

-- Requests counted against each account's daily quota, per tenant calendar day.
CREATE TABLE quota_usage (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    day TEXT NOT NULL,
    tenant_id INTEGER NOT NULL,
    used INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (account_id, day)
);
