-- The MinePass ledger. Work is stored as decimal TEXT: it is a u128 (expected hashes) and SQLite's
-- INTEGER is 64-bit; sums are done in Rust inside the same transaction. (PostgreSQL: NUMERIC(39,0).)

CREATE TABLE sites (
    id          INTEGER PRIMARY KEY,
    site_key    TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    -- SHA-256 of the site secret, hex. Secrets are 256-bit random values, so a fast hash suffices.
    secret_hash TEXT    NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

CREATE TABLE content (
    id            INTEGER PRIMARY KEY,
    site_id       INTEGER NOT NULL REFERENCES sites(id),
    content_key   TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    required_work TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (site_id, content_key)
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    site_id     INTEGER NOT NULL REFERENCES sites(id),
    external_id TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (site_id, external_id)
);

CREATE TABLE progress (
    user_id     INTEGER NOT NULL REFERENCES users(id),
    content_id  INTEGER NOT NULL REFERENCES content(id),
    work        TEXT    NOT NULL,
    unlocked_at INTEGER,
    PRIMARY KEY (user_id, content_id)
);

-- One row per accepted share, with everything needed to re-verify it later: the full header (nonce
-- included) and the target it was judged against.
CREATE TABLE shares (
    id          INTEGER PRIMARY KEY,
    session     TEXT    NOT NULL,
    job_id      TEXT    NOT NULL,
    nonce       INTEGER NOT NULL,
    site_id     INTEGER NOT NULL REFERENCES sites(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    content_id  INTEGER REFERENCES content(id),
    header      BLOB    NOT NULL,
    target      BLOB    NOT NULL,
    work        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (job_id, nonce)
);
CREATE INDEX shares_by_user ON shares (user_id);
