-- SendCloud's replay guard: a signed, timestamped request is accepted once.
-- Kept in the database so that every server process sees every request, and
-- a restart forgets nothing. A row lives until its timestamp leaves the
-- window (`expires_at_ms`); expired rows are swept in the background.
CREATE TABLE signed_requests (
    tenant_id BIGINT NOT NULL,
    signature TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, signature)
);
CREATE INDEX signed_requests_expiry ON signed_requests (expires_at_ms);
