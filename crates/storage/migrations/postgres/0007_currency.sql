-- Multi-currency billing. A product is priced in a currency (its tariffs,
-- usage charges and bill lines are in it), and an account has one bill per
-- month and currency, with settlements in that currency. Everything stored
-- before this was in yuan, which is what the defaults fill in; every write
-- names the currency.
ALTER TABLE products ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';
ALTER TABLE settlements ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';

-- The keys of bills and bill lines gain the currency.
ALTER TABLE bills ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';
ALTER TABLE bills DROP CONSTRAINT bills_pkey, ADD PRIMARY KEY (account_id, month, currency);
ALTER TABLE bill_lines ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';
ALTER TABLE bill_lines DROP CONSTRAINT bill_lines_pkey, ADD PRIMARY KEY (account_id, month, currency, line_no);
