-- The schema PostgreSQL's 0002 introduces, so that both backends keep one schema and one
-- `ledger check`: each share carries its job's issue time (`job_at`, Unix ms; the partition key
-- there), each pool submission its share's site, and the rollup tables exist. An embedded SQLite
-- ledger is not partitioned and keeps every share (`ledger retain` needs PostgreSQL), so its
-- rollup tables stay empty; see docs/SCALE.md.

ALTER TABLE shares ADD COLUMN job_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pool_submissions ADD COLUMN site_id INTEGER REFERENCES sites(id);

-- Existing rows get their values with the append-only triggers lifted for this step only. Their
-- job time is unknown: their commit time stands in, which differs by at most a job's lifetime.
DROP TRIGGER shares_no_update;
UPDATE shares SET job_at = created_at;
CREATE TRIGGER shares_no_update BEFORE UPDATE ON shares BEGIN SELECT RAISE(ABORT, 'shares are append-only'); END;
DROP TRIGGER pool_submissions_no_update;
UPDATE pool_submissions SET site_id = (SELECT s.site_id FROM shares s WHERE s.id = pool_submissions.share_id);
CREATE TRIGGER pool_submissions_no_update BEFORE UPDATE ON pool_submissions BEGIN SELECT RAISE(ABORT, 'pool submissions are append-only'); END;

-- See migrations/postgres/0002_share_partitions.sql for what these hold.
CREATE TABLE share_rollup_days (
    day        INTEGER PRIMARY KEY,
    shares     INTEGER NOT NULL CHECK (shares >= 0),
    work       TEXT    NOT NULL,
    forwarded  BLOB    NOT NULL,
    digest     TEXT    NOT NULL,
    chain      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE share_rollups (
    day        INTEGER NOT NULL REFERENCES share_rollup_days(day),
    site_id    INTEGER NOT NULL REFERENCES sites(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    content_id INTEGER REFERENCES content(id),
    shares     INTEGER NOT NULL CHECK (shares > 0),
    work       TEXT    NOT NULL
);
CREATE INDEX share_rollups_by_day ON share_rollups (day);

CREATE TRIGGER share_rollup_days_no_update BEFORE UPDATE ON share_rollup_days BEGIN SELECT RAISE(ABORT, 'share rollups are append-only'); END;
CREATE TRIGGER share_rollup_days_no_delete BEFORE DELETE ON share_rollup_days BEGIN SELECT RAISE(ABORT, 'share rollups are append-only'); END;
CREATE TRIGGER share_rollups_no_update BEFORE UPDATE ON share_rollups BEGIN SELECT RAISE(ABORT, 'share rollups are append-only'); END;
CREATE TRIGGER share_rollups_no_delete BEFORE DELETE ON share_rollups BEGIN SELECT RAISE(ABORT, 'share rollups are append-only'); END;
