-- A wallet whose reservation is zero answers to its floor check alone (one constraint names one broken rule).
-- Two-phase transfers. A hold (a pending transfer) reserves money on its
-- debit wallet until it is posted (possibly for less), voided, or expires at
-- its timeout. Holds draw their ids from the transfers' id space, and are
-- mutable only in their state: the money they move is a transfer of its own
-- when they are posted.
ALTER TABLE wallets ADD COLUMN reserved_minor INTEGER NOT NULL DEFAULT 0 CHECK (reserved_minor >= 0 AND (reserved_minor = 0 OR floor_minor IS NULL OR balance_minor - reserved_minor >= floor_minor));

CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided', 'expired', 'rejected')),
    rejection TEXT,
    kind TEXT NOT NULL,
    debit_wallet_id INTEGER NOT NULL,
    credit_wallet_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 1),
    currency TEXT NOT NULL,
    memo TEXT,
    timeout_at_us INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    resolved_at_us INTEGER,
    posted_transfer_id INTEGER,
    posted_amount_minor INTEGER,
    CHECK ((state = 'rejected') = (rejection IS NOT NULL)),
    CHECK ((state IN ('pending', 'rejected')) = (resolved_at_us IS NULL)),
    CHECK ((state = 'posted') = (posted_transfer_id IS NOT NULL AND posted_amount_minor BETWEEN 1 AND amount_minor))
);
CREATE UNIQUE INDEX holds_idempotency ON holds (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- What the expiry sweep looks for.
CREATE INDEX holds_pending_timeout ON holds (timeout_at_us) WHERE state = 'pending';
CREATE INDEX holds_tenant ON holds (tenant_id, id);
