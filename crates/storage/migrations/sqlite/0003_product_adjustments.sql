-- A tenant's own product names the orderType of its supplementary (补扣)
-- lines and, optionally, of its refunds (返账), and says what a quantity counts.
ALTER TABLE products ADD COLUMN supplement_order_type INTEGER NOT NULL DEFAULT 15;
ALTER TABLE products ADD COLUMN refund_order_type INTEGER;
ALTER TABLE products ADD COLUMN quantity_meaning TEXT NOT NULL DEFAULT '';
