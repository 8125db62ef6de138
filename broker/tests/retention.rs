//! The share log at scale: day partitions on PostgreSQL (a throwaway cluster, whatever the run's
//! backend), retention that rolls old days up, and `ledger check` over what remains.

mod common;

use std::sync::Arc;

use common::postgres::Cluster;
use common::{raw_execute, raw_strings};
use minepass_broker::books::Source;
use minepass_broker::books::retention::day_name;
use minepass_broker::store::{
    Credit, DAY_MS, Ledger, Location, PoolAnswer, PoolSubmission, ShareRecord, now_ms,
};
use minepass_broker::vault::{KeySource, Vault};

/// The all-ones target: every header meets it, and its work is one expected hash.
const EASIEST: [u8; 32] = [0xff; 32];

struct Ledgers {
    ledger: Ledger,
    location: Location,
    /// The key-encryption key, for the CLI.
    key: String,
    site_id: i64,
    today: i64,
}

async fn postgres_ledger() -> Ledgers {
    let location = Location::Postgres(Cluster::shared().create_database());
    let key = hex::encode(rand::random::<[u8; 32]>());
    let (ledger, _) = Ledger::open_with_key(location.clone(), &KeySource::Hex(key.clone())).await.unwrap();
    let site = ledger.add_site("news.example").await.unwrap();
    let site_id = ledger.site_by_key(&site.key).await.unwrap().unwrap().id;
    Ledgers { ledger, location, key, site_id, today: now_ms() / DAY_MS }
}

/// `minepass-broker ledger --database URL retain --keep-days N`: its stdout, and whether it succeeded.
fn retain_cli(ledgers: &Ledgers, keep_days: u32) -> (String, bool) {
    let Location::Postgres(url) = &ledgers.location else { unreachable!("a PostgreSQL ledger") };
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_minepass-broker"))
        .args(["ledger", "--database", url, "retain", "--keep-days", &keep_days.to_string()])
        .env("MINEPASS_KEY", &ledgers.key)
        .output()
        .unwrap();
    (String::from_utf8_lossy(&output.stdout).into_owned(), output.status.success())
}

/// A share of a job issued at noon of `day`, re-verifiable (any header meets the easiest target);
/// `forwarded`: also submitted to the pool.
fn share(site_id: i64, user: &str, day: i64, index: u32, forwarded: bool) -> ShareRecord {
    let mut header = [0u8; 80];
    header[..4].copy_from_slice(&index.to_le_bytes());
    ShareRecord {
        session: "s".into(),
        job_id: format!("job-{day}-{index}"),
        job_at: day * DAY_MS + DAY_MS / 2,
        nonce: index,
        site_id,
        user: user.into(),
        content_id: None,
        header,
        target: EASIEST,
        work: 1,
        pool: forwarded.then(|| PoolSubmission {
            pool: "stratum+tcp://pool:1".into(),
            upstream_job: "1".into(),
            extranonce2: "00000000".into(),
            ntime: 0,
            pool_target: EASIEST,
            pool_work: 1,
        }),
    }
}

/// Commits `shares` and the pool's acceptance of those forwarded.
async fn commit(ledger: &Ledger, shares: &[ShareRecord]) {
    let credits = ledger.commit_shares(shares, &[]).await.unwrap();
    let answers: Vec<PoolAnswer> = credits
        .iter()
        .zip(shares)
        .filter(|(_, share)| share.pool.is_some())
        .map(|(credit, _)| match credit {
            Credit::Credited { share_id, .. } => {
                PoolAnswer { share_id: *share_id, outcome: "accepted", code: None, reason: None }
            }
            Credit::Duplicate => panic!("fresh shares"),
        })
        .collect();
    ledger.commit_shares(&[], &answers).await.unwrap();
}

async fn make_partition(location: &Location, day: i64) {
    raw_execute(location, &[&format!("SELECT create_share_partition({day})")]).await.unwrap();
}

fn partition(day: i64) -> String {
    format!("shares_{}", day_name(day).replace('-', ""))
}

async fn exists(location: &Location, table: &str) -> bool {
    raw_strings(location, &format!("SELECT COALESCE(to_regclass('{table}')::TEXT, '')")).await[0] == table
}

#[tokio::test]
async fn old_days_roll_up_and_drop_and_ledger_check_proves_what_replaced_them() {
    let ledgers = postgres_ledger().await;
    let (ledger, location, site_id, today) =
        (&ledgers.ledger, &ledgers.location, ledgers.site_id, ledgers.today);
    let (old, older) = (today - 9, today - 10);
    // A broker makes the days around today; the old days exist as they would have then.
    assert!(exists(location, &partition(today)).await && exists(location, &partition(today + 7)).await);
    make_partition(location, older).await;
    make_partition(location, old).await;
    let mut shares = vec![
        share(site_id, "alice", older, 0, true),
        share(site_id, "alice", older, 1, false),
        share(site_id, "bob", older, 2, false),
        share(site_id, "alice", old, 3, false),
        share(site_id, "bob", old, 4, true),
    ];
    shares.push(share(site_id, "alice", today, 5, true));
    commit(ledger, &shares).await;
    let homes =
        raw_strings(location, "SELECT DISTINCT tableoid::regclass::TEXT FROM shares ORDER BY 1").await;
    assert_eq!(homes, [partition(older), partition(old), partition(today)], "each share in its job's day");
    let pool_work_before = ledger.pool_work_by_partner(0, i64::MAX / 2).await.unwrap();
    let before = ledger.check().await.unwrap();
    assert!(before.problems.is_empty(), "{:?}", before.problems);
    assert_eq!((before.shares, before.pool_submissions), (6, 3));

    let report = ledger.retain_shares(5).await.unwrap();
    let rolled: Vec<_> =
        report.rolled_up.iter().map(|d| (d.day, d.shares, d.work, d.forwarded.len())).collect();
    assert_eq!(rolled, [(older, 3, 3, 1), (old, 2, 2, 1)], "oldest first, with their totals");
    assert_eq!(report.kept, None);
    assert!(!exists(location, &partition(older)).await && !exists(location, &partition(old)).await);
    assert!(exists(location, &partition(today)).await, "the retained window stays raw");

    let after = ledger.check().await.unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!((after.shares, after.rolled_up_days, after.rolled_up_shares), (1, 2, 5));
    assert_eq!(after.pool_submissions, 3, "rolled-up submissions are still proved");
    assert_eq!(ledger.credits(site_id, "alice").await.unwrap(), 4, "credits are running totals");
    assert_eq!(ledger.credits(site_id, "bob").await.unwrap(), 2);
    assert_eq!(
        ledger.pool_work_by_partner(0, i64::MAX / 2).await.unwrap(),
        pool_work_before,
        "periods still see the pool work of rolled-up days (the submission keeps its site)"
    );
    let again = ledger.retain_shares(5).await.unwrap();
    assert!(again.rolled_up.is_empty() && again.kept.is_none(), "nothing left to retire");
    assert_eq!(retain_cli(&ledgers, 5).0.trim(), "nothing to retire: no day of raw shares is 5 days old");
    // A rolled-up day is never made again (its late shares, if any, land in the default).
    make_partition(location, old).await;
    assert!(!exists(location, &partition(old)).await);

    // Rollups are append-only, and an edit behind the triggers' back is found.
    assert!(raw_execute(location, &["UPDATE share_rollups SET work = work + 1"]).await.is_err());
    assert!(raw_execute(location, &["DELETE FROM share_rollup_days"]).await.is_err());
    raw_execute(location, &[
        "ALTER TABLE share_rollups DISABLE TRIGGER share_rollups_no_update",
        "UPDATE share_rollups SET work = work + 1 WHERE user_id = (SELECT id FROM users WHERE external_id = 'bob')",
        // A pool claim without any share behind it.
        &format!(
            "INSERT INTO pool_submissions (share_id, site_id, pool, upstream_job, extranonce2, ntime, pool_target, pool_work, created_at)
             VALUES (999999, {site_id}, 'p', '1', '00', 0, '\\x{}', 1, 0)",
            "ff".repeat(32)
        ),
    ])
    .await
    .unwrap();
    let problems = ledger.check().await.unwrap().problems;
    let has = |text: &str| problems.iter().any(|p| p.contains(text));
    assert!(has("or its rows were altered (chain mismatch)"), "{problems:?}");
    assert!(has("its totals are not the sum of its rows"), "{problems:?}");
    assert!(has("earned credits 2 differ from the share log"), "{problems:?}");
    assert!(has("pool submission 999999 has no share"), "{problems:?}");
}

#[tokio::test]
async fn a_day_stays_raw_until_its_periods_are_settled_and_every_share_reverifies() {
    let Ledgers { ledger, location, site_id, today, .. } = postgres_ledger().await;
    let (first, second) = (today - 20, today - 19);
    make_partition(&location, first).await;
    make_partition(&location, second).await;
    commit(
        &ledger,
        &[
            share(site_id, "alice", first, 0, true),
            share(site_id, "alice", second, 1, false),
            share(site_id, "alice", second, 2, false),
        ],
    )
    .await;
    // The pool's answer arrived now, but a period may cover any time the operator names.
    let period = (first * DAY_MS, (first + 1) * DAY_MS);
    ledger.record_period("old", period.0, period.1, 1000, Source::Recorded).await.unwrap();
    let report = ledger.retain_shares(5).await.unwrap();
    assert!(report.rolled_up.is_empty());
    let (day, why) = report.kept.unwrap();
    assert_eq!(day, first);
    assert!(why.contains("unsettled period"), "{why}");
    assert!(exists(&location, &partition(first)).await, "nothing dropped");

    ledger.settle_period("old", 0).await.unwrap();
    // A share of the second day altered behind the triggers' back: that day must not go.
    raw_execute(
        &location,
        &[
            "ALTER TABLE shares DISABLE TRIGGER shares_no_update",
            "UPDATE shares SET work = 7 WHERE nonce = 2",
            "ALTER TABLE shares ENABLE TRIGGER shares_no_update",
        ],
    )
    .await
    .unwrap();
    let report = ledger.retain_shares(5).await.unwrap();
    assert_eq!(report.rolled_up.iter().map(|d| d.day).collect::<Vec<_>>(), [first], "settled: it goes");
    let (day, why) = report.kept.unwrap();
    assert_eq!(day, second);
    assert!(why.contains("credited work 7 is not its target's"), "{why}");
    assert!(exists(&location, &partition(second)).await, "a day with a bad share stays raw");
    let problems = ledger.check().await.unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("credited work 7")), "{problems:?}");
}

#[tokio::test]
async fn a_share_whose_day_has_no_partition_is_kept_in_the_default_one() {
    let Ledgers { ledger, location, site_id, today, .. } = postgres_ledger().await;
    let lost_day = today - 400;
    commit(&ledger, &[share(site_id, "alice", lost_day, 0, false)]).await;
    let home = raw_strings(&location, "SELECT tableoid::regclass::TEXT FROM shares").await;
    assert_eq!(home, ["shares_default"]);
    // Its day cannot get a partition now (the row would have to move): it stays in the default,
    // raw, re-verified by every check, never rolled up.
    make_partition(&location, lost_day).await;
    assert!(!exists(&location, &partition(lost_day)).await);
    let report = ledger.retain_shares(1).await.unwrap();
    assert!(report.rolled_up.is_empty());
    let check = ledger.check().await.unwrap();
    assert!(check.problems.is_empty() && check.shares == 1, "{check:?}");
    assert_eq!(ledger.credits(site_id, "alice").await.unwrap(), 1);
    // Append-only on every partition: TRUNCATE is refused on the parent and on the default.
    assert!(raw_execute(&location, &["TRUNCATE shares_default"]).await.is_err());
    assert!(raw_execute(&location, &[&format!("TRUNCATE {}", partition(today))]).await.is_err());
    assert!(raw_execute(&location, &["DELETE FROM shares"]).await.is_err());
}

#[tokio::test]
async fn an_unpartitioned_ledger_moves_into_day_partitions_with_every_share() {
    // A PostgreSQL ledger as the first fleet release left it: migration 0001 only, with shares
    // and a pool submission that references one.
    let dir = tempfile::tempdir().unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    let first = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres/0001_ledger.sql");
    std::fs::copy(first, old_migrations.join("0001_ledger.sql")).unwrap();
    let url = Cluster::shared().create_database();
    let old = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old_migrations.as_path()).await.unwrap().run(&old).await.unwrap();
    let day = now_ms() / DAY_MS - 3;
    let ones = "ff".repeat(32);
    let script = format!(
        "INSERT INTO sites (id, site_key, name, secret_hash, created_at) VALUES (1, 'site_old', 'Old', 'x', 0);
         INSERT INTO users (id, site_id, external_id, created_at) VALUES (1, 1, 'reader', 0);
         INSERT INTO user_work (user_id, earned) VALUES (1, 2);
         INSERT INTO shares (id, session, job_id, nonce, site_id, user_id, header, target, work, created_at) VALUES
             (1, 's', 'j', 0, 1, 1, '\\x{zeros}', '\\x{ones}', 1, {a}),
             (2, 's', 'j', 1, 1, 1, '\\x{zeros}', '\\x{ones}', 1, {b});
         INSERT INTO pool_submissions (share_id, pool, upstream_job, extranonce2, ntime, pool_target, pool_work, created_at)
             VALUES (2, 'p', '1', '00', 0, '\\x{ones}', 1, {b});",
        zeros = "00".repeat(80),
        a = day * DAY_MS + 1,
        b = (day + 1) * DAY_MS + 1,
    );
    sqlx::raw_sql(&script).execute(&old).await.unwrap();
    old.close().await;

    let location = Location::Postgres(url);
    let ledger = Ledger::open(location.clone(), Arc::new(Vault::ephemeral())).await.unwrap();
    let homes = raw_strings(&location, "SELECT tableoid::regclass::TEXT FROM shares ORDER BY id").await;
    assert_eq!(homes, [partition(day), partition(day + 1)], "each old share in its day");
    assert_eq!(raw_strings(&location, "SELECT site_id::TEXT FROM pool_submissions").await, ["1"]);
    let check = ledger.check().await.unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!((check.shares, check.pool_submissions), (2, 1));
    // New shares continue the ids, and the old duplicate rule holds.
    let site_id = 1;
    let credits = ledger.commit_shares(&[share(site_id, "reader", day + 3, 9, false)], &[]).await.unwrap();
    assert!(matches!(credits[0], Credit::Credited { share_id: 3, .. }), "{credits:?}");
    let again = ledger.commit_shares(&[share(site_id, "reader", day + 3, 9, false)], &[]).await.unwrap();
    assert_eq!(again, [Credit::Duplicate]);
}

#[tokio::test]
async fn retention_is_refused_on_sqlite_and_for_zero_days() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite"), Arc::new(Vault::ephemeral())).await.unwrap();
    let error = ledger.retain_shares(30).await.unwrap_err().to_string();
    assert!(error.contains("needs a PostgreSQL ledger"), "{error}");
    let postgres = postgres_ledger().await;
    let error = postgres.ledger.retain_shares(0).await.unwrap_err().to_string();
    assert!(error.contains("at least one day"), "{error}");
}
