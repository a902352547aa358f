-- Two-phase transfers. A hold (a pending transfer) reserves money on its
-- debit wallet until it is posted (possibly for less), voided, or expires at
-- its timeout. Holds draw their ids from the transfers' id space
-- (`transfer_ids`), and are mutable only in their state: the money they move
-- is a transfer of its own when they are posted.
ALTER TABLE wallets ADD COLUMN reserved_minor BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT wallets_reservation CHECK (reserved_minor >= 0 AND (reserved_minor = 0 OR floor_minor IS NULL OR balance_minor - reserved_minor >= floor_minor));

CREATE TABLE holds (
    id BIGINT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided', 'expired', 'rejected')),
    rejection TEXT,
    kind TEXT NOT NULL,
    debit_wallet_id BIGINT NOT NULL,
    credit_wallet_id BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 1),
    currency TEXT NOT NULL,
    memo TEXT,
    timeout_at_us BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    resolved_at_us BIGINT,
    posted_transfer_id BIGINT,
    posted_amount_minor BIGINT,
    CHECK ((state = 'rejected') = (rejection IS NOT NULL)),
    CHECK ((state IN ('pending', 'rejected')) = (resolved_at_us IS NULL)),
    CHECK ((state = 'posted') = (posted_transfer_id IS NOT NULL AND posted_amount_minor BETWEEN 1 AND amount_minor))
) WITH (fillfactor = 80); -- room for HOT updates of the state
CREATE UNIQUE INDEX holds_idempotency ON holds (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- What the expiry sweep looks for.
CREATE INDEX holds_pending_timeout ON holds (timeout_at_us) WHERE state = 'pending';
CREATE INDEX holds_tenant ON holds (tenant_id, id);
