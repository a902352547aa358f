-- Multi-currency billing. A product is priced in a currency (its tariffs,
-- usage charges and bill lines are in it), and an account has one bill per
-- month and currency, with settlements in that currency. Everything stored
-- before this was in yuan, which is what the defaults fill in; every write
-- names the currency.
ALTER TABLE products ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';
ALTER TABLE settlements ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';

-- The keys of bills and bill lines gain the currency. SQLite cannot change a
-- primary key in place, so both tables are rebuilt (nothing references them).
CREATE TABLE bills_by_currency (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    month TEXT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'CNY',
    total_cents INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (account_id, month, currency)
);
INSERT INTO bills_by_currency (tenant_id, account_id, month, currency, total_cents, created_at_us)
    SELECT tenant_id, account_id, month, 'CNY', total_cents, created_at_us FROM bills;
DROP TABLE bills;
ALTER TABLE bills_by_currency RENAME TO bills;
CREATE INDEX bills_tenant_month ON bills (tenant_id, month);

CREATE TABLE bill_lines_by_currency (
    tenant_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    month TEXT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'CNY',
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
    PRIMARY KEY (account_id, month, currency, line_no)
);
INSERT INTO bill_lines_by_currency (tenant_id, account_id, month, currency, line_no, kind, for_month, product_code, order_type, description, unit,
                                    quantity_milli, money_cents, previous_quantity_milli, previous_money_cents, detail)
    SELECT tenant_id, account_id, month, 'CNY', line_no, kind, for_month, product_code, order_type, description, unit,
           quantity_milli, money_cents, previous_quantity_milli, previous_money_cents, detail FROM bill_lines;
DROP TABLE bill_lines;
ALTER TABLE bill_lines_by_currency RENAME TO bill_lines;
