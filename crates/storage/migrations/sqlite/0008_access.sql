-- Access control and the operation log (issue 9): the tenant's language,
-- sub-users' seat fields and login state, roles and application grants,
-- sessions, notices, and the append-only operation log. The PostgreSQL
-- migration of the same number creates the same schema.

-- Operation log descriptions and application names are given in it.
ALTER TABLE tenants ADD COLUMN language TEXT NOT NULL DEFAULT 'zh-CN' CHECK (language IN ('zh-CN', 'en'));

-- A sub-user's access lifecycle, beside `status` (1 active, -1 frozen: a
-- money-side state that SendCloud shows): 1 enabled, 2 disabled (cannot log
-- in), 3 cancelled (cannot log in or be charged, kept for its history; a
-- sub-user is never deleted).
-- Whose wallets its charges draw on: its own, or its tenant's (UUCall seats).
ALTER TABLE accounts ADD COLUMN funding TEXT NOT NULL DEFAULT 'own' CHECK (funding IN ('own', 'tenant'));
ALTER TABLE accounts ADD COLUMN access_state INTEGER NOT NULL DEFAULT 1 CHECK (access_state IN (1, 2, 3));
-- 1: the role's application template applies (UUCall `roleEnble` 1); 0: only own grants.
ALTER TABLE accounts ADD COLUMN role_template INTEGER NOT NULL DEFAULT 1 CHECK (role_template IN (0, 1));
ALTER TABLE accounts ADD COLUMN person_name TEXT;
ALTER TABLE accounts ADD COLUMN job_number TEXT;
ALTER TABLE accounts ADD COLUMN extension INTEGER;
ALTER TABLE accounts ADD COLUMN department TEXT;
ALTER TABLE accounts ADD COLUMN note TEXT;
-- Failed logins since the last success, and the lock they led to.
ALTER TABLE accounts ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0);
ALTER TABLE accounts ADD COLUMN locked_until_us INTEGER;
ALTER TABLE accounts ADD COLUMN last_login_at_us INTEGER;
ALTER TABLE accounts ADD COLUMN logins INTEGER NOT NULL DEFAULT 0 CHECK (logins >= 0);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    level INTEGER NOT NULL CHECK (level >= 0),
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
ALTER TABLE accounts ADD COLUMN role_id INTEGER REFERENCES roles (id);
CREATE INDEX accounts_role ON accounts (tenant_id, role_id) WHERE role_id IS NOT NULL;

-- A role's application template: the leaves it grants.
CREATE TABLE role_apps (
    role_id INTEGER NOT NULL REFERENCES roles (id),
    app_id INTEGER NOT NULL,
    PRIMARY KEY (role_id, app_id)
);

-- A sub-user's own grants (granted 1) and revocations (granted 0), on top of its role's.
CREATE TABLE account_apps (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    app_id INTEGER NOT NULL,
    granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
    PRIMARY KEY (account_id, app_id)
);

-- Sub-users' sessions, by the SHA-256 of their token (the token is never stored).
CREATE TABLE sessions (
    token_sha256 TEXT PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL,
    ended_at_us INTEGER
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expiry ON sessions (expires_at_us);

CREATE TABLE notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
CREATE INDEX notices_tenant ON notices (tenant_id, id);

-- The sub-users a notice is aimed at; a notice without targets is for everyone.
CREATE TABLE notice_targets (
    notice_id INTEGER NOT NULL REFERENCES notices (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    PRIMARY KEY (notice_id, account_id)
);
CREATE INDEX notice_targets_account ON notice_targets (account_id, notice_id);

-- The operation log: one entry per committed change, written in the change's
-- transaction. No foreign keys, like the ledger's tables: ledger batches
-- write it on the hot path (see 0001_foundation.sql).
-- A plain INTEGER PRIMARY KEY, not AUTOINCREMENT: ids never come back (no
-- row is ever deleted) and AUTOINCREMENT would write sqlite_sequence once
-- per entry, on the ledger's hot path.
CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('tenant', 'sub_user', 'admin', 'cli', 'system')),
    actor_account_id INTEGER,
    actor_name TEXT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    outcome TEXT NOT NULL,
    CHECK ((actor_kind = 'sub_user') = (actor_account_id IS NOT NULL AND actor_name IS NOT NULL))
);
CREATE INDEX operations_tenant_time ON operations (tenant_id, at_us, id);
CREATE INDEX operations_tenant_actor_time ON operations (tenant_id, actor_name, at_us, id) WHERE actor_name IS NOT NULL;
CREATE TRIGGER operations_append_only_update BEFORE UPDATE ON operations
BEGIN SELECT RAISE(ABORT, 'the operation log is append-only'); END;
CREATE TRIGGER operations_append_only_delete BEFORE DELETE ON operations
BEGIN SELECT RAISE(ABORT, 'the operation log is append-only'); END;
