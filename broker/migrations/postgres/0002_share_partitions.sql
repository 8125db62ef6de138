-- The share log by day, and its retention (docs/SCALE.md, "The share log at scale").
--
-- `shares` becomes a table partitioned by the day its job was issued (`job_at`, Unix ms): a day's
-- shares are one partition, which `minepass-broker ledger retain` replaces by its totals per
-- (site, user, content item) once the day is re-verified and its periods are settled, then drops.
-- Dropping a partition is the only way a share row ever leaves the ledger; the row triggers still
-- forbid UPDATE and DELETE, and every partition forbids TRUNCATE.
--
-- The partition key must be part of every unique key, so the duplicate rule becomes
-- (job_id, nonce, job_at): the same thing, because a job id is issued once and its issue time with
-- it. `pool_submissions` can no longer reference `shares(id)` (no unique key on `id` alone): it
-- keeps its share's site instead (what periods need to credit partners), and `ledger check`
-- proves that every submission has its share, raw or rolled up.

ALTER TABLE pool_submissions DROP CONSTRAINT pool_submissions_share_id_fkey;
ALTER TABLE pool_submissions ADD COLUMN site_id BIGINT REFERENCES sites(id);
ALTER TABLE pool_submissions DISABLE TRIGGER pool_submissions_no_update;
UPDATE pool_submissions p SET site_id = s.site_id FROM shares s WHERE s.id = p.share_id;
ALTER TABLE pool_submissions ENABLE TRIGGER pool_submissions_no_update;
ALTER TABLE pool_submissions ALTER COLUMN site_id SET NOT NULL;

ALTER TABLE shares RENAME TO shares_unpartitioned;
ALTER INDEX shares_pkey RENAME TO shares_unpartitioned_pkey;
DROP INDEX shares_by_user;
DROP INDEX shares_by_site_time;

-- PostgreSQL 15 has no identity columns on partitioned tables: a plain sequence, continuing.
CREATE SEQUENCE share_ids AS BIGINT;
SELECT setval('share_ids', COALESCE((SELECT MAX(id) FROM shares_unpartitioned), 0) + 1, false);

CREATE TABLE shares (
    id          BIGINT NOT NULL DEFAULT nextval('share_ids'),
    session     TEXT   NOT NULL,
    job_id      TEXT   NOT NULL,
    nonce       BIGINT NOT NULL,
    site_id     BIGINT NOT NULL REFERENCES sites(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    content_id  BIGINT REFERENCES content(id),
    header      BYTEA  NOT NULL,
    target      BYTEA  NOT NULL,
    work        NUMERIC(39,0) NOT NULL CHECK (work >= 0),
    created_at  BIGINT NOT NULL,
    -- When the share's job was issued (Unix ms): the partition key.
    job_at      BIGINT NOT NULL,
    PRIMARY KEY (id, job_at),
    UNIQUE (job_id, nonce, job_at)
) PARTITION BY RANGE (job_at);
ALTER SEQUENCE share_ids OWNED BY shares.id;
CREATE INDEX shares_by_user ON shares (user_id);
CREATE INDEX shares_by_site_time ON shares (site_id, created_at);

-- Shares whose day has no partition (a clock far off, or a day already rolled up) are kept here:
-- never lost, and `ledger retain` says so instead of rolling their day up.
CREATE TABLE shares_default PARTITION OF shares DEFAULT;

CREATE TRIGGER shares_no_update BEFORE UPDATE ON shares
    FOR EACH ROW EXECUTE FUNCTION reject_change('shares are append-only');
CREATE TRIGGER shares_no_delete BEFORE DELETE ON shares
    FOR EACH ROW EXECUTE FUNCTION reject_change('shares are append-only');
CREATE TRIGGER shares_no_truncate BEFORE TRUNCATE ON shares
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change('shares are append-only');
-- Row triggers are cloned onto every partition; statement triggers are not.
CREATE TRIGGER shares_no_truncate BEFORE TRUNCATE ON shares_default
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change('shares are append-only');

-- A day's totals once its raw shares were re-verified and dropped. `day` counts days since
-- 1970-01-01 UTC of the jobs' issue time. `forwarded` lists the day's shares that were submitted to
-- the pool (their ids, 8 bytes big-endian each, ascending), so that `ledger check` can prove every
-- pool submission still has its share; `digest` is the SHA-256 of the raw shares it replaced (an
-- operator holding a backup of the partition can prove it matches); `chain` links each day to the
-- one rolled up before it, over the day and its rows, so an edited, inserted or deleted rollup is
-- detected as the books' entries are.
CREATE TABLE share_rollup_days (
    day        BIGINT PRIMARY KEY,
    shares     BIGINT NOT NULL CHECK (shares >= 0),
    work       NUMERIC(39,0) NOT NULL CHECK (work >= 0),
    forwarded  BYTEA  NOT NULL,
    digest     TEXT   NOT NULL,
    chain      TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE share_rollups (
    day        BIGINT NOT NULL REFERENCES share_rollup_days(day),
    site_id    BIGINT NOT NULL REFERENCES sites(id),
    user_id    BIGINT NOT NULL REFERENCES users(id),
    content_id BIGINT REFERENCES content(id),
    shares     BIGINT NOT NULL CHECK (shares > 0),
    work       NUMERIC(39,0) NOT NULL CHECK (work >= 0)
);
CREATE INDEX share_rollups_by_day ON share_rollups (day);

CREATE TRIGGER share_rollup_days_no_update BEFORE UPDATE ON share_rollup_days
    FOR EACH ROW EXECUTE FUNCTION reject_change('share rollups are append-only');
CREATE TRIGGER share_rollup_days_no_delete BEFORE DELETE ON share_rollup_days
    FOR EACH ROW EXECUTE FUNCTION reject_change('share rollups are append-only');
CREATE TRIGGER share_rollup_days_no_truncate BEFORE TRUNCATE ON share_rollup_days
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change('share rollups are append-only');
CREATE TRIGGER share_rollups_no_update BEFORE UPDATE ON share_rollups
    FOR EACH ROW EXECUTE FUNCTION reject_change('share rollups are append-only');
CREATE TRIGGER share_rollups_no_delete BEFORE DELETE ON share_rollups
    FOR EACH ROW EXECUTE FUNCTION reject_change('share rollups are append-only');
CREATE TRIGGER share_rollups_no_truncate BEFORE TRUNCATE ON share_rollups
    FOR EACH STATEMENT EXECUTE FUNCTION reject_change('share rollups are append-only');

-- Creates the partition of `day` (days since 1970-01-01 UTC), `shares_YYYYMMDD`, unless it exists
-- or the day was rolled up; true if it made one. Brokers call it for the days ahead, so every
-- share has its partition before it arrives; the lock makes concurrent brokers take turns. If
-- the default partition already holds shares of that day, the partition cannot be made (their
-- rows would have to move): it warns and returns false, and the day stays in the default.
CREATE FUNCTION create_share_partition(day BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    partition TEXT := 'shares_' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    -- "MPPARTS" in ASCII.
    PERFORM pg_advisory_xact_lock(21761878830240851);
    IF to_regclass(partition) IS NOT NULL
       OR EXISTS (SELECT 1 FROM share_rollup_days r WHERE r.day = create_share_partition.day) THEN
        RETURN FALSE;
    END IF;
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF shares FOR VALUES FROM (%s) TO (%s)',
                       partition, day * 86400000, (day + 1) * 86400000);
    EXCEPTION WHEN check_violation THEN
        RAISE WARNING 'shares of % are in shares_default: no partition made for that day', partition;
        RETURN FALSE;
    END;
    EXECUTE format('CREATE TRIGGER shares_no_truncate BEFORE TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION reject_change(%L)',
                   partition, 'shares are append-only');
    RETURN TRUE;
END;
$$;

-- The existing shares, each in its day (their job time is unknown: their commit time stands in,
-- which differs by at most a job's lifetime).
SELECT create_share_partition(d) FROM (SELECT DISTINCT created_at / 86400000 AS d FROM shares_unpartitioned) days;
INSERT INTO shares (id, session, job_id, nonce, site_id, user_id, content_id, header, target, work, created_at, job_at)
    SELECT id, session, job_id, nonce, site_id, user_id, content_id, header, target, work, created_at, created_at
    FROM shares_unpartitioned;
DROP TABLE shares_unpartitioned;
