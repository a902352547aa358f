-- Seats (issue 9): what a product is billed as (usage, or a monthly function
-- fee or rental) and which basic-bill category its usage falls in; prepaid
-- time cards; subscriptions to monthly items; and the minutes time cards
-- covered, beside the money-billed quantities, in events, rollups and bill
-- lines. The PostgreSQL migration of the same number creates the same schema.

-- 'usage': metered by events. 'function' / 'rental': a monthly fee per
-- subscribed account, charged at month close (UUCall funrate / hirerate).
ALTER TABLE products ADD COLUMN kind TEXT NOT NULL DEFAULT 'usage' CHECK (kind IN ('usage', 'function', 'rental'));
-- The column of UUCall's basic bill its usage is counted in.
ALTER TABLE products ADD COLUMN bill_category TEXT NOT NULL DEFAULT 'other' CHECK (bill_category IN ('call_in', 'call_out', 'internal_voice', 'sms', 'other'));

-- Minutes covered by time cards (thousandths, like the other quantities);
-- `billable_milli` keeps what money paid for. NULL on rejected events.
ALTER TABLE usage_events ADD COLUMN card_milli INTEGER;
ALTER TABLE usage_daily ADD COLUMN card_milli INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_monthly ADD COLUMN card_milli INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bill_lines ADD COLUMN card_milli INTEGER NOT NULL DEFAULT 0;

-- Prepaid minutes (时长卡): of one account, or shared by the tenant's seats
-- (account_id NULL). Consumed by usage batches, in their transaction.
CREATE TABLE time_cards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    account_id INTEGER REFERENCES accounts (id),
    name TEXT NOT NULL,
    minutes_total INTEGER NOT NULL CHECK (minutes_total > 0),
    minutes_left INTEGER NOT NULL,
    effective_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'cancelled')),
    note TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    CHECK (minutes_left >= 0 AND minutes_left <= minutes_total),
    CHECK (expires_at_us > effective_at_us)
);
CREATE INDEX time_cards_holder ON time_cards (tenant_id, account_id, id);

-- An account's subscription to a monthly item (a function, a rental, its
-- seat) from an instant until another (NULL: until further notice).
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    product_code TEXT NOT NULL,
    from_us INTEGER NOT NULL,
    until_us INTEGER,
    created_at_us INTEGER NOT NULL,
    CHECK (until_us IS NULL OR until_us >= from_us)
);
CREATE INDEX subscriptions_account ON subscriptions (tenant_id, account_id, product_code);
-- At most one open subscription per account and product.
CREATE UNIQUE INDEX subscriptions_open ON subscriptions (account_id, product_code) WHERE until_us IS NULL;
