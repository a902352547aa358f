-- Month closes in chunks. A close bills a tenant's accounts a chunk at a
-- time, in id order, each chunk its own transaction, so that the ledger
-- worker serves other work between chunks. While a close is under way its
-- month has a row here: the accounts up to `last_account_id` are billed and
-- settled, and the chunks and bills so far are counted (the report's
-- money is summed from the stored bills and settlements once closed). The chunk that bills the last accounts deletes the row and
-- inserts `month_closes`. Usage for a closing month is late (billed at the
-- next close) for the accounts already billed, and lands on the month's bill
-- for the others.
CREATE TABLE month_closings (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    month TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    last_account_id BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    bills BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, month)
);

-- A chunk takes the tenant's next accounts in id order.
CREATE INDEX accounts_tenant ON accounts (tenant_id, id);

-- A chunk reads its accounts' rollups of the month: a range of this index
-- (its prefix serves what the old index did).
DROP INDEX usage_monthly_tenant_month;
CREATE INDEX usage_monthly_tenant_month ON usage_monthly (tenant_id, month, account_id);

-- A close's report sums the month's settlements per currency.
CREATE INDEX settlements_tenant_month ON settlements (tenant_id, month);
