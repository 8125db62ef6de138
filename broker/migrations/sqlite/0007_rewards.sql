-- Consumer rewards. A user's verified work becomes credits (one credit = one expected hash) they
-- spend on the publisher's offers. `user_work` is a running total kept by the share committer (and
-- checked against the share log by `ledger check`); spends are append-only.

CREATE TABLE user_work (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    -- Σ work of the user's shares, decimal (u128).
    earned  TEXT NOT NULL,
    -- Σ price of the user's spends, decimal (u128).
    spent   TEXT NOT NULL DEFAULT '0'
);

-- What a publisher offers for credits: a content unlock, N days of a subscription, or app tokens.
CREATE TABLE offers (
    id         INTEGER PRIMARY KEY,
    site_id    INTEGER NOT NULL REFERENCES sites(id),
    offer_key  TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('content', 'subscription', 'tokens')),
    title      TEXT    NOT NULL,
    -- Credits (expected hashes), decimal (u128).
    price      TEXT    NOT NULL,
    -- content: the content item's key; subscription: days; tokens: how many.
    content    TEXT,
    amount     INTEGER,
    created_at INTEGER NOT NULL,
    UNIQUE (site_id, offer_key)
);

CREATE TABLE credit_spends (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    offer_id   INTEGER NOT NULL REFERENCES offers(id),
    price      TEXT    NOT NULL,
    -- The grant token's id.
    jti        TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TRIGGER credit_spends_no_update BEFORE UPDATE ON credit_spends BEGIN SELECT RAISE(ABORT, 'spends are append-only'); END;
CREATE TRIGGER credit_spends_no_delete BEFORE DELETE ON credit_spends BEGIN SELECT RAISE(ABORT, 'spends are append-only'); END;
