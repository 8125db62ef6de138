-- Unlock-token signing keys (Ed25519 seeds; the active key has no retired_at) and the single-use
-- record of verified tokens.
CREATE TABLE signing_keys (
    kid        TEXT    PRIMARY KEY,
    seed       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);

CREATE TABLE token_uses (
    jti     TEXT    PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    used_at INTEGER NOT NULL
);
