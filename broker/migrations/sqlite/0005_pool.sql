-- Pool work. A share whose hash also meets the upstream pool's target is written here in the same
-- transaction as the share, before it is submitted upstream, so a share the pool accepted is never
-- missing from the ledger; the pool's answer is a second row when it arrives. Both tables are
-- append-only. Earnings count pool-accepted work (pool_work: expected hashes at the pool's target).

CREATE TABLE pool_submissions (
    share_id     INTEGER PRIMARY KEY REFERENCES shares(id),
    pool         TEXT    NOT NULL,
    upstream_job TEXT    NOT NULL,
    extranonce2  TEXT    NOT NULL,
    ntime        INTEGER NOT NULL,
    pool_target  BLOB    NOT NULL,
    pool_work    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE pool_answers (
    share_id    INTEGER PRIMARY KEY REFERENCES pool_submissions(share_id),
    -- accepted | rejected | unanswered (the connection closed or the answer came too late)
    outcome     TEXT    NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'unanswered')),
    -- The pool's error code (Stratum: 21 stale, 22 duplicate, 23 low difficulty, …) and message.
    code        INTEGER,
    reason      TEXT,
    answered_at INTEGER NOT NULL
);
