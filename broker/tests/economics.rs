//! Partner economics on a real ledger (SQLite, or PostgreSQL in `cargo xtask test`'s second pass):
//! pool-accepted shares of partners' sites, a period's earnings, settlement, payouts, reversals, and
//! `ledger check` finding tampered rows.

mod common;

use common::{ledger_location, on_postgres, raw_execute, raw_strings};
use minepass::kernel::Job;
use minepass::target::Target;
use minepass_broker::books::Source;
use minepass_broker::store::{Credit, Ledger, Location, PoolAnswer, PoolSubmission, ShareRecord};

/// A real share: a header mined under a target of `work` expected hashes, also submitted to the pool
/// at the same target.
fn share(site_id: i64, user: &str, index: u32, work: u128) -> ShareRecord {
    let mut header = [0u8; 80];
    header[..4].copy_from_slice(&index.to_le_bytes());
    header[4..8].copy_from_slice(&(site_id as u32).to_le_bytes());
    let target = Target::from_expected_hashes(work);
    let job = Job::new(&header, target).unwrap();
    let mut hits = Vec::new();
    let mut from = 0u32;
    while hits.is_empty() {
        job.scan(from, 4096, &mut hits).unwrap();
        from += 4096;
    }
    header[76..].copy_from_slice(&hits[0].to_le_bytes());
    ShareRecord {
        session: "s".into(),
        job_id: format!("job-{site_id}-{index}"),
        job_at: minepass_broker::store::now_ms(),
        nonce: hits[0],
        site_id,
        user: user.into(),
        content_id: None,
        header,
        target: target.to_le_bytes(),
        work: target.expected_hashes(),
        pool: Some(PoolSubmission {
            pool: "stratum+tcp://pool:1".into(),
            upstream_job: "1".into(),
            extranonce2: "00000000".into(),
            ntime: 0,
            pool_target: target.to_le_bytes(),
            pool_work: target.expected_hashes(),
        }),
    }
}

/// Commits `count` shares of `work` for a site and records the pool's acceptance of each.
async fn accepted_shares(ledger: &Ledger, site_id: i64, count: u32, work: u128) {
    let batch: Vec<ShareRecord> = (0..count).map(|i| share(site_id, "u", i, work)).collect();
    let credits = ledger.commit_shares(&batch, &[]).await.unwrap();
    let answers: Vec<PoolAnswer> = credits
        .iter()
        .map(|c| match c {
            Credit::Credited { share_id, .. } => {
                PoolAnswer { share_id: *share_id, outcome: "accepted", code: None, reason: None }
            }
            Credit::Duplicate => panic!("fresh shares"),
        })
        .collect();
    ledger.commit_shares(&[], &answers).await.unwrap();
}

struct Books {
    ledger: Ledger,
    _dir: tempfile::TempDir,
    location: Location,
}

/// Two partners (A at the default 30 %, B at 10 %), a site each and an operator-owned site; A's site
/// did 3 units of pool work, B's 1, the operator's 1 (units of 256 hashes).
async fn books() -> Books {
    let dir = tempfile::tempdir().unwrap();
    let location = ledger_location(dir.path());
    let ledger =
        Ledger::open(location.clone(), std::sync::Arc::new(minepass_broker::vault::Vault::ephemeral()))
            .await
            .unwrap();
    let a = ledger.add_partner("Partner A").await.unwrap();
    let b = ledger.add_partner("Partner B").await.unwrap();
    ledger.set_partner_commission(&b.key, Some(1000)).await.unwrap();
    let mut sites = Vec::new();
    for (name, partner) in [("a.example", Some(&a.key)), ("b.example", Some(&b.key)), ("own.example", None)] {
        let site = ledger.add_site(name).await.unwrap();
        if let Some(partner) = partner {
            ledger.assign_site(&site.key, partner).await.unwrap();
        }
        sites.push(ledger.site_by_key(&site.key).await.unwrap().unwrap().id);
    }
    accepted_shares(&ledger, sites[0], 3, 256).await;
    accepted_shares(&ledger, sites[1], 1, 256).await;
    accepted_shares(&ledger, sites[2], 1, 256).await;
    Books { ledger, _dir: dir, location }
}

fn balance(balances: &[(String, i64)], account: &str) -> i64 {
    balances.iter().find(|(a, _)| a == account).map_or(0, |(_, b)| *b)
}

const FOREVER: i64 = i64::MAX / 2;

#[tokio::test]
async fn a_period_is_split_by_pool_accepted_work_with_every_satoshi_accounted_for() {
    let books = books().await;
    let ledger = &books.ledger;
    let partners = ledger.partners().await.unwrap();
    let (a, b) = (partners[0].id, partners[1].id);
    let work = ledger.pool_work_by_partner(0, FOREVER).await.unwrap();
    assert_eq!(work.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, a, b], "operator, A, B");

    ledger.record_period("2026-11", 0, FOREVER, 100_001, Source::Recorded).await.unwrap();
    let result = ledger.settle_period("2026-11", 30_000).await.unwrap();
    // Work 1:3:1 of 100,001 sats: 20,000.2 / 60,000.6 / 20,000.2 → the spare sat to the largest
    // remainder (A's .6).
    let gross: Vec<u64> = result.partners.iter().map(|p| p.gross).collect();
    assert_eq!(gross, vec![20_000, 60_001, 20_000]);
    let net: Vec<u64> = result.partners.iter().map(|p| p.net).collect();
    assert_eq!(net[1], 60_001 - 18_000, "A pays the default 30 %, rounded down");
    assert_eq!(net[2], 18_000, "B pays its 10 % override");
    assert!(ledger.settle_period("2026-11", 0).await.is_err(), "a period settles once");

    let balances = ledger.balances().await.unwrap();
    let paid_out = -balance(&balances, &format!("partner:{a}:payable"))
        - balance(&balances, &format!("partner:{b}:payable"));
    let commission = -balance(&balances, "income:commission");
    assert_eq!(paid_out + commission, 100_001, "partners + commission == earnings, exactly");
    assert_eq!(balance(&balances, "income:mining"), 0, "settled income is all distributed");

    // A (42,001) reaches the 30,000 threshold, B (18,000) carries over.
    let due = ledger.payouts(true).await.unwrap();
    assert_eq!(
        due.iter().map(|p| (p.partner_name.as_str(), p.amount_sats)).collect::<Vec<_>>(),
        vec![("Partner A", 42_001)]
    );
    ledger.mark_paid(due[0].id).await.unwrap();
    assert!(ledger.mark_paid(due[0].id).await.is_err(), "paid once");
    assert!(ledger.payouts(true).await.unwrap().is_empty());

    // An estimate is booked as a receivable, not as money in the wallet.
    ledger.record_period("2026-12", FOREVER, FOREVER + 1, 20_000, Source::Estimate).await.unwrap();
    let balances = ledger.balances().await.unwrap();
    assert_eq!(balance(&balances, "assets:receivable"), 20_000);
    assert_eq!(balance(&balances, "assets:wallet"), 100_001 - 42_001);
    let report = ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.shares, 5);
    assert_eq!(report.pool_submissions, 5);
}

#[tokio::test]
async fn carried_balances_are_paid_when_they_cross_the_threshold_and_reversals_undo_a_settlement() {
    let books = books().await;
    let ledger = &books.ledger;
    ledger.record_period("p1", 0, FOREVER, 10_000, Source::Recorded).await.unwrap();
    ledger.settle_period("p1", 1_000_000).await.unwrap();
    assert!(ledger.payouts(false).await.unwrap().is_empty(), "everyone under the threshold carries");
    // A second period over the same work: carried + net crosses a lower threshold.
    ledger.record_period("p2", 0, FOREVER, 10_000, Source::Recorded).await.unwrap();
    let settled = ledger.settle_period("p2", 7_000).await.unwrap();
    let a = settled.partners.iter().find(|p| p.gross == 6_000).unwrap();
    assert_eq!((a.net, a.payout, a.carry), (4_200, 8_400, 0), "4,200 carried + 4,200 net");

    // A wrong settlement is corrected by a reversing entry, never by an edit.
    let periods = ledger.periods().await.unwrap();
    assert!(periods.iter().all(|p| p.settled));
    let entries: Vec<i64> = raw_strings(
        &books.location,
        "SELECT CAST(id AS TEXT) FROM entries WHERE kind = 'settlement' ORDER BY id",
    )
    .await
    .iter()
    .map(|id| id.parse().unwrap())
    .collect();
    let attempt = ledger.reverse_entry(entries[1], "wrong threshold").await;
    assert!(
        attempt.is_err(),
        "p2 made a payout, so it stays: {entries:?} {attempt:?} {:?}",
        ledger.payouts(false).await
    );
    let reversal = ledger.reverse_entry(entries[0], "p1 settled in error").await.unwrap();
    assert!(ledger.reverse_entry(entries[0], "again").await.is_err());
    assert!(ledger.reverse_entry(reversal, "undo the undo").await.is_err());
    assert!(!ledger.periods().await.unwrap()[0].settled, "p1 may be settled again");
    let report = ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

async fn tamper(location: &Location, statements: &[&str]) {
    raw_execute(location, statements).await.unwrap();
}

#[tokio::test]
async fn the_books_refuse_edits_and_ledger_check_finds_tampered_rows() {
    let books = books().await;
    let ledger = &books.ledger;
    ledger.record_period("p", 0, FOREVER, 5_000, Source::Recorded).await.unwrap();
    ledger.settle_period("p", 0).await.unwrap();
    assert!(ledger.check().await.unwrap().problems.is_empty());

    // The triggers refuse edits through SQL.
    for edit in [
        "UPDATE postings SET amount = amount + 1",
        "DELETE FROM postings",
        "UPDATE shares SET work = '1'",
        "DELETE FROM entries",
    ] {
        let error = raw_execute(&books.location, &[edit]).await.unwrap_err().to_string();
        assert!(error.contains("append-only"), "{edit}: {error}");
    }

    // Someone with the database drops the triggers and moves 100 sats between two postings of one
    // entry: still balanced, but the chain gives it away.
    let on = if on_postgres() { " ON postings" } else { "" };
    tamper(&books.location, &[
        &format!("DROP TRIGGER postings_no_update{on}"),
        "UPDATE postings SET amount = amount - 100 WHERE id = (SELECT MIN(id) FROM postings WHERE account LIKE 'partner:%')",
        "UPDATE postings SET amount = amount + 100 WHERE account = 'income:commission'",
    ])
    .await;
    let problems = ledger.check().await.unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("chain mismatch")), "{problems:?}");

    // A share row with a changed header no longer hashes under its target.
    let (on, zeros) =
        if on_postgres() { (" ON shares", "decode(repeat('00', 80), 'hex')") } else { ("", "zeroblob(80)") };
    tamper(
        &books.location,
        &[
            &format!("DROP TRIGGER shares_no_update{on}"),
            &format!("UPDATE shares SET header = {zeros} WHERE id = 2"),
        ],
    )
    .await;
    let problems = ledger.check().await.unwrap().problems;
    assert!(
        problems.iter().any(|p| p.contains("share 2: its header does not hash under its target")),
        "{problems:?}"
    );
    // A share whose credited work was inflated.
    tamper(&books.location, &["UPDATE shares SET work = '999999' WHERE id = 3"]).await;
    let problems = ledger.check().await.unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("share 3: credited work 999999")), "{problems:?}");
}

#[tokio::test]
async fn racing_settlements_and_payout_markings_are_decided_once_by_the_ledger() {
    use minepass_broker::books::BooksError;
    let books = books().await;
    let ledger = &books.ledger;
    ledger.record_period("race", 0, FOREVER, 100_000, Source::Recorded).await.unwrap();
    // Eight operators settle the same period at once: one settlement, seven documented refusals.
    let settles = futures_util::future::join_all((0..8).map(|_| ledger.settle_period("race", 1_000))).await;
    assert_eq!(settles.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(settles.iter().filter_map(|r| r.as_ref().err()).all(|e| matches!(e, BooksError::AlreadySettled)));
    let due = ledger.payouts(true).await.unwrap();
    assert!(!due.is_empty());
    // And eight mark the same payout paid: one payout entry, seven `AlreadyPaid`.
    let marks = futures_util::future::join_all((0..8).map(|_| ledger.mark_paid(due[0].id))).await;
    assert_eq!(marks.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(marks.iter().filter_map(|r| r.as_ref().err()).all(|e| matches!(e, BooksError::AlreadyPaid)));
    let payout_entries =
        raw_strings(&books.location, "SELECT CAST(id AS TEXT) FROM entries WHERE kind = 'payout'").await;
    assert_eq!(payout_entries.len(), 1, "one payout entry");
    assert!(matches!(ledger.mark_paid(9_999).await, Err(BooksError::NotFound)));
    assert!(matches!(ledger.settle_period("nope", 0).await, Err(BooksError::NotFound)));
    let report = ledger.check().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
