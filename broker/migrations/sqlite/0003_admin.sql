-- Operator credentials for the admin API. Like site secrets, tokens are 256-bit random values stored
-- as their SHA-256 (hex); revoking sets revoked_at and keeps the row for the audit trail.
CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY,
    token_hash TEXT    NOT NULL UNIQUE,
    label      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
