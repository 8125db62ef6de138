//! `minepass-broker`: serve the broker, or administer sites and content from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use minepass_broker::config::{ServeConfig, ServeOptions};
use minepass_broker::http::StaticDirs;
use minepass_broker::session::{Broker, RateLimit};
use minepass_broker::store::Ledger;
use minepass_broker::tokens::Tokens;
use minepass_broker::vault::Loaded;
use minepass_broker::work::upstream::Upstream;
use minepass_broker::work::{Jobs, Vardiff};

#[derive(Parser)]
#[command(
    name = "minepass-broker",
    version,
    about = "MinePass broker: work, verified shares, ledger, unlocks"
)]
struct Cli {
    /// TOML file with `serve` options (flags and MINEPASS_* variables take precedence).
    #[arg(long, global = true, env = "MINEPASS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (HTTP + WebSocket).
    Serve(ServeOptions),
    /// Manage sites.
    Site {
        #[command(subcommand)]
        action: SiteAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Manage the unlock-token signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Manage content items.
    Content {
        #[command(subcommand)]
        action: ContentAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Print a running broker's upstream state, pool difficulty, pool accept/reject counts and
    /// effective hash rate (from its `/metrics`).
    Status {
        /// The broker's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Manage partners (who own sites and are paid their share of the earnings).
    Partner {
        #[command(subcommand)]
        action: PartnerAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Record a period's earnings: what the pool paid, or the PPS estimate.
    Earnings {
        #[command(subcommand)]
        action: EarningsAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Settle a period: split its earnings among partners by pool-accepted work, minus commission.
    Settle {
        #[arg(long)]
        period: String,
        /// Minimum payout in satoshis; smaller balances carry over.
        #[arg(long, default_value_t = 10_000)]
        threshold: u64,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// List, export (CSV) or mark payouts paid.
    Payouts {
        #[command(subcommand)]
        action: PayoutsAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// The double-entry books: check them, show balances, reverse an entry.
    Ledger {
        #[command(subcommand)]
        action: LedgerAction,
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Manage the operator's tokens for the admin API (`Authorization: Bearer …`).
    AdminToken {
        #[command(subcommand)]
        action: AdminTokenAction,
        #[command(flatten)]
        options: ServeOptions,
    },
}

#[derive(Subcommand)]
enum PartnerAction {
    /// Create a partner; prints its key and its dashboard key (shown once, stored hashed).
    Add {
        #[arg(long)]
        name: String,
    },
    /// List partners and their commission.
    List,
    /// Set a partner's commission in basis points, or `default`.
    Commission { partner: String, bps: String },
    /// Set the global default commission in basis points (3000 = 30 %).
    DefaultCommission { bps: u32 },
    /// Give a site to a partner.
    AssignSite {
        #[arg(long)]
        site: String,
        #[arg(long)]
        partner: String,
    },
}

#[derive(Subcommand)]
enum EarningsAction {
    /// What the pool paid for a period (satoshis).
    Record {
        #[arg(long)]
        period: String,
        /// First day (YYYY-MM-DD, UTC) or Unix ms.
        #[arg(long)]
        from: String,
        /// Day after the last (YYYY-MM-DD, UTC) or Unix ms.
        #[arg(long)]
        to: String,
        #[arg(long)]
        sats: u64,
    },
    /// The PPS estimate from pool-accepted work: work × reward / (difficulty × 2^32). Labelled an
    /// estimate (booked as a receivable, not as money received).
    Estimate {
        #[arg(long)]
        period: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Block reward in satoshis (subsidy plus typical fees).
        #[arg(long)]
        block_reward: u64,
        /// Network difficulty (integer, bdiff).
        #[arg(long)]
        difficulty: u128,
    },
    /// List periods.
    List,
}

#[derive(Subcommand)]
enum PayoutsAction {
    /// Payouts due (`--all`: paid ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Payouts due as CSV: id,partner,name,period,amount_sats.
    Export,
    /// Record that a payout was paid.
    MarkPaid { id: i64 },
}

#[derive(Subcommand)]
enum LedgerAction {
    /// Prove the books: the entry chain, balanced entries, no negative partner balance, every raw
    /// share of the share log re-verified, and the rollups of retired days. Exits non-zero on any
    /// problem.
    Check,
    /// Retire old days of the share log (PostgreSQL): each day that ended --keep-days ago or more,
    /// once its shares re-verify and the periods over it are settled, is replaced by its totals per
    /// site, user and content item (hash-chained, proved by `ledger check`) and its partition
    /// dropped. Oldest first; stops at the first day that must stay, and says why.
    Retain {
        #[arg(long, default_value_t = 30)]
        keep_days: u32,
    },
    /// Account balances in satoshis (debit positive).
    Balances,
    /// Correct an entry with a reversing entry.
    Reverse {
        entry: i64,
        #[arg(long)]
        memo: String,
    },
}

#[derive(Subcommand)]
enum AdminTokenAction {
    /// Create a token; prints it (shown once, stored hashed).
    Add {
        #[arg(long, default_value = "operator")]
        label: String,
    },
    /// Revoke every admin token.
    RevokeAll,
}

#[derive(Subcommand)]
enum SiteAction {
    /// Create a site; prints its public key and its secret (shown once, stored hashed).
    Add {
        #[arg(long)]
        name: String,
    },
    /// List sites.
    List,
    /// Stop handing out work for a site.
    Disable { key: String },
    /// Resume a disabled site.
    Enable { key: String },
    /// Replace a site's secret (the old one stops working at once); prints the new one (shown once).
    /// Sites created before user proofs need this once before they can vouch for their users.
    RotateSecret { key: String },
    /// Print a user proof for a publisher-vouched user id, as the publisher's server mints it
    /// (for trying things out; a real site computes it itself, see examples/kits/).
    UserProof {
        #[arg(long)]
        site: String,
        #[arg(long)]
        user: String,
        /// Hours the proof stays valid (at most 744).
        #[arg(long, default_value_t = 1)]
        hours: u32,
    },
    /// Set the longest consent lifetime (hours) a site's hellos may present [default: 168].
    ConsentMax { key: String, hours: u32 },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Make a new active signing key; the old one stays in the JWKS until its tokens expire.
    Rotate,
}

#[derive(Subcommand)]
enum ContentAction {
    /// Encrypt a content item's gated HTML (a new key version); prints the sealed string for pages
    /// that embed it. The SDK fetches the newest version from the broker otherwise.
    Seal {
        #[arg(long)]
        site: String,
        #[arg(long)]
        id: String,
        /// The gated HTML (`-` for standard input).
        #[arg(long)]
        file: PathBuf,
        /// Stop opening earlier versions at once.
        #[arg(long)]
        retire_previous: bool,
    },
    /// Add or update a content item and the work (expected hashes) that unlocks it.
    Add {
        #[arg(long)]
        site: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        work: u128,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    // Logs go to stderr: stdout is the commands' output (and `serve`'s address line), which
    // scripts read. PostgreSQL's notices ("relation … already exists, skipping" at every start)
    // are not news.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => ServeOptions::from_file(path)?,
        None => ServeOptions::default(),
    };
    match cli.command {
        Command::Serve(options) => serve(options, file).await,
        Command::Status { url } => {
            let metrics = reqwest::get(format!("{}/metrics", url.trim_end_matches('/')))
                .await
                .and_then(|r| r.error_for_status())
                .with_context(|| format!("reading {url}/metrics"))?
                .text()
                .await?;
            print!("{}", minepass_broker::metrics::status_report(&metrics));
            Ok(())
        }
        Command::Site { action, options } => {
            let ledger = open_ledger(options, file).await?;
            match action {
                SiteAction::Add { name } => {
                    let site = ledger.add_site(&name).await?;
                    println!("site key:    {}\nsite secret: {}", site.key, site.secret);
                }
                SiteAction::List => {
                    for site in ledger.sites().await? {
                        let state = if site.enabled { "enabled" } else { "disabled" };
                        println!("{}\t{state}\t{}", site.key, site.name);
                    }
                }
                SiteAction::Disable { key } => ledger.set_site_enabled(&key, false).await?,
                SiteAction::Enable { key } => ledger.set_site_enabled(&key, true).await?,
                SiteAction::RotateSecret { key } => {
                    let site = ledger.rotate_site_secret(&key).await?;
                    println!("site key:    {}\nsite secret: {} (shown once)", site.key, site.secret);
                }
                SiteAction::UserProof { site, user, hours } => {
                    let found =
                        ledger.site_by_key(&site).await?.with_context(|| format!("no site {site}"))?;
                    let secret = ledger.site_secret(&found)?.context(
                        "this site's secret predates user proofs: `minepass-broker site rotate-secret` first",
                    )?;
                    anyhow::ensure!(
                        minepass_broker::identity::is_valid_user(&user),
                        "user must be 1-128 bytes, no control characters"
                    );
                    let exp = minepass_broker::store::now_ms() / 1000 + i64::from(hours.clamp(1, 744)) * 3600;
                    println!("{}", minepass_broker::identity::user_proof(&secret, &site, &user, exp));
                }
                SiteAction::ConsentMax { key, hours } => ledger.set_consent_max_hours(&key, hours).await?,
            }
            Ok(())
        }
        Command::Keys { action: KeysAction::Rotate, options } => {
            let ledger = open_ledger(options, file).await?;
            println!("new signing key: {}", minepass_broker::tokens::rotate(&ledger).await?);
            Ok(())
        }
        Command::Partner { action, options } => {
            let ledger = open_ledger(options, file).await?;
            partner(&ledger, action).await
        }
        Command::Earnings { action, options } => {
            let ledger = open_ledger(options, file).await?;
            earnings(&ledger, action).await
        }
        Command::Settle { period, threshold, options } => {
            let ledger = open_ledger(options, file).await?;
            let result = ledger.settle_period(&period, threshold).await?;
            println!(
                "period {period}: {} sats; operator commission {} sats",
                result.earnings, result.commission
            );
            for p in &result.partners {
                println!(
                    "  partner {}: gross {} commission {} net {} payout {} carried {}",
                    p.partner, p.gross, p.commission, p.net, p.payout, p.carry
                );
            }
            Ok(())
        }
        Command::Payouts { action, options } => {
            let ledger = open_ledger(options, file).await?;
            match action {
                PayoutsAction::List { all } => {
                    for p in ledger.payouts(!all).await? {
                        let state = if p.paid { "paid" } else { "due" };
                        println!(
                            "{}\t{state}\t{}\t{}\t{}\t{}",
                            p.id, p.partner_key, p.partner_name, p.period, p.amount_sats
                        );
                    }
                }
                PayoutsAction::Export => {
                    print!("{}", minepass_broker::books::payouts_csv(&ledger.payouts(true).await?))
                }
                PayoutsAction::MarkPaid { id } => {
                    ledger.mark_paid(id).await?;
                    println!("payout {id} marked paid");
                }
            }
            Ok(())
        }
        Command::Ledger { action, options } => {
            let ledger = open_ledger(options, file).await?;
            match action {
                LedgerAction::Check => {
                    let report = ledger.check().await?;
                    println!(
                        "{} entries, {} postings, {} shares ({} forwarded to a pool) checked",
                        report.entries, report.postings, report.shares, report.pool_submissions
                    );
                    if report.rolled_up_days > 0 {
                        println!(
                            "{} rolled-up days ({} shares) checked against the credits",
                            report.rolled_up_days, report.rolled_up_shares
                        );
                    }
                    if !report.problems.is_empty() {
                        for problem in &report.problems {
                            println!("PROBLEM: {problem}");
                        }
                        anyhow::bail!("{} problem(s) in the ledger", report.problems.len());
                    }
                    println!("ok: every account balances and every share re-verifies");
                }
                LedgerAction::Balances => {
                    for (account, balance) in ledger.balances().await? {
                        println!("{account}\t{balance}");
                    }
                }
                LedgerAction::Reverse { entry, memo } => {
                    println!("reversing entry: {}", ledger.reverse_entry(entry, &memo).await?);
                }
                LedgerAction::Retain { keep_days } => {
                    let report = ledger.retain_shares(keep_days).await?;
                    for day in &report.rolled_up {
                        println!(
                            "rolled up {}: {} shares, {} work, {} forwarded to a pool",
                            minepass_broker::books::retention::day_name(day.day),
                            day.shares,
                            day.work,
                            day.forwarded.len()
                        );
                    }
                    match &report.kept {
                        Some((day, why)) => {
                            println!(
                                "kept {} and later days: {why}",
                                minepass_broker::books::retention::day_name(*day)
                            )
                        }
                        None if report.rolled_up.is_empty() => {
                            println!("nothing to retire: no day of raw shares is {keep_days} days old")
                        }
                        None => {}
                    }
                }
            }
            Ok(())
        }
        Command::AdminToken { action, options } => {
            let ledger = open_ledger(options, file).await?;
            match action {
                AdminTokenAction::Add { label } => {
                    println!("admin token: {}", ledger.add_admin_token(&label).await?);
                }
                AdminTokenAction::RevokeAll => {
                    println!("revoked {} admin tokens", ledger.revoke_admin_tokens().await?);
                }
            }
            Ok(())
        }
        Command::Content { action: ContentAction::Add { site, id, title, work }, options } => {
            let ledger = open_ledger(options, file).await?;
            ledger.put_content(&site, &id, &title, work).await?;
            println!("content {id} of {site} unlocks at {work} hashes");
            Ok(())
        }
        Command::Content {
            action: ContentAction::Seal { site, id, file: html, retire_previous },
            options,
        } => {
            let html = if html.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&html).with_context(|| format!("reading {}", html.display()))?
            };
            let ledger = open_ledger(options, file).await?;
            let sealed = ledger.seal_content(&site, &id, &html, retire_previous).await?;
            println!(
                "content {id} of {site} sealed as version {}. Remove the HTML from your page: the SDK \
                 fetches the ciphertext from the broker after the unlock, or embed it:\n\
                 <minepass-gate content=\"{id}\" sealed=\"{}\"></minepass-gate>",
                sealed.version, sealed.text
            );
            Ok(())
        }
    }
}

async fn serve(options: ServeOptions, file: ServeOptions) -> Result<()> {
    let config = options.resolve(file)?;
    let ledger = open_ledger_of(&config).await?;
    if let Some(keep_days) = config.share_retention_days {
        ledger.can_retain(keep_days).context("--share-retention-days")?;
    }
    ensure_demo_site(&ledger).await?;
    ensure_admin_token(&ledger).await?;
    let vardiff = Vardiff {
        interval: config.share_interval,
        min_work: config.min_share_work.into(),
        max_work: u128::from(config.max_share_work.max(config.min_share_work)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
    let tokens = Tokens::load(&ledger, issuer).await?;
    let jobs = match config.upstream {
        Some(upstream) => {
            let pools: Vec<String> = upstream.pools.iter().map(|p| p.display()).collect();
            println!(
                "Mining for the pool: {} (fallback while down: {:?})",
                pools.join(", "),
                upstream.fallback
            );
            Jobs::pool(Upstream::start(upstream))
        }
        None => Jobs::gate(),
    };
    let mut broker = Broker::new(ledger, jobs, vardiff, tokens);
    broker.max_connections_per_address = config.max_connections_per_address;
    broker.trusted_proxies = config.trusted_proxies.clone();
    broker.share_retention_days = config.share_retention_days;
    broker.rate_limit =
        RateLimit { per_second: config.messages_per_second, burst: 2 * config.messages_per_second };
    let broker = Arc::new(broker);
    println!("MinePass broker listening on http://{address}/ (ledger in {})", config.database.display());
    let dirs = StaticDirs { www: config.www, pkg: config.pkg };
    minepass_broker::run(listener, broker, &dirs, shutdown_signal()).await
}

/// The ledger of the data directory `options` and the config file name (administrative commands).
async fn open_ledger(options: ServeOptions, file: ServeOptions) -> Result<Ledger> {
    open_ledger_of(&options.resolve(file)?).await
}

/// The ledger with its key-encryption key; on the first start of the embedded default, says where
/// the generated key is and why it must be backed up apart from the ledger.
async fn open_ledger_of(config: &ServeConfig) -> Result<Ledger> {
    let (ledger, loaded) = Ledger::open_with_key(config.database.clone(), &config.key).await?;
    if let Loaded::Generated(path) = loaded {
        eprintln!(
            "WARNING: generated the key-encryption key {path}. It seals the ledger's signing keys, \
             content keys and site secrets: back it up apart from the ledger (without it they cannot \
             be opened; with it and a copy of the ledger, anyone can mint tokens). In production keep \
             it out of the data directory: --key-file or MINEPASS_KEY.",
            path = path.display()
        );
    }
    Ok(ledger)
}

async fn partner(ledger: &Ledger, action: PartnerAction) -> Result<()> {
    match action {
        PartnerAction::Add { name } => {
            let partner = ledger.add_partner(&name).await?;
            println!("partner key:   {}\ndashboard key: {} (shown once)", partner.key, partner.secret);
        }
        PartnerAction::List => {
            let default = ledger.default_commission().await?;
            for p in ledger.partners().await? {
                let bps = p.commission_bps.map_or(format!("{default} (default)"), |b| b.to_string());
                println!("{}\t{}\tcommission {bps} bps", p.key, p.name);
            }
        }
        PartnerAction::Commission { partner, bps } => {
            let bps = if bps == "default" {
                None
            } else {
                Some(bps.parse().context("bps is 0-10000 or `default`")?)
            };
            ledger.set_partner_commission(&partner, bps).await?;
        }
        PartnerAction::DefaultCommission { bps } => ledger.set_default_commission(bps).await?,
        PartnerAction::AssignSite { site, partner } => ledger.assign_site(&site, &partner).await?,
    }
    Ok(())
}

async fn earnings(ledger: &Ledger, action: EarningsAction) -> Result<()> {
    use minepass_broker::books::{Source, parse_time};
    match action {
        EarningsAction::Record { period, from, to, sats } => {
            ledger
                .record_period(&period, parse_time(&from)?, parse_time(&to)?, sats, Source::Recorded)
                .await?;
            println!("period {period}: {sats} sats recorded");
        }
        EarningsAction::Estimate { period, from, to, block_reward, difficulty } => {
            let (from, to) = (parse_time(&from)?, parse_time(&to)?);
            let work: u128 = ledger.pool_work_by_partner(from, to).await?.iter().map(|(_, w)| w).sum();
            let sats = minepass_broker::books::settlement::pps_estimate(work, block_reward, difficulty);
            ledger.record_period(&period, from, to, sats, Source::Estimate).await?;
            println!("period {period}: ESTIMATE {sats} sats from {work} hashes of pool-accepted work");
        }
        EarningsAction::List => {
            for p in ledger.periods().await? {
                let settled = if p.settled { "settled" } else { "open" };
                println!("{}\t{:?}\t{}\t{settled}", p.name, p.source, p.earnings_sats);
            }
        }
    }
    Ok(())
}

/// The demo site's public key (site keys are public; its secret is random).
const DEMO_SITE_KEY: &str = "site_demo";

/// The demo article's gated half. Not under `www/` (which is served as it is): the only copy the
/// demo page can get is the sealed one.
const DEMO_ARTICLE: &str = include_str!("../demo/demo-article.html");

/// On first start, a demo site with one content item so the broker is usable with no configuration;
/// its gated half is sealed (also in a ledger from before sealing).
async fn ensure_demo_site(ledger: &Ledger) -> Result<()> {
    let created = if ledger.sites().await?.is_empty() {
        // A fixed public key, so the static demo page (www/demo/) can name it. Another broker of a
        // fleet starting at the same moment may make it first.
        ledger.add_site_if_absent(DEMO_SITE_KEY, "Demo publisher").await?
    } else {
        None
    };
    let Some(site) = created else {
        if let Some(site) = ledger.site_by_key(DEMO_SITE_KEY).await?
            && ledger.content(site.id).await?.iter().any(|c| c.key == "demo-article")
            && ledger.current_seal(DEMO_SITE_KEY, "demo-article").await?.is_none()
        {
            ledger.seal_content(DEMO_SITE_KEY, "demo-article", DEMO_ARTICLE, false).await?;
        }
        return Ok(());
    };
    // 2^28 hashes: about 20-40 s for a laptop browser with the simd kernel on a few threads.
    ledger.put_content(&site.key, "demo-article", "The second half of the demo article", 1 << 28).await?;
    ledger.seal_content(&site.key, "demo-article", DEMO_ARTICLE, false).await?;
    println!(
        "Created the demo site.\n  site key:    {}\n  site secret: {} (shown once)",
        site.key, site.secret
    );
    Ok(())
}

/// On first start, an admin API token, printed once.
async fn ensure_admin_token(ledger: &Ledger) -> Result<()> {
    if ledger.admin_tokens_created().await? == 0 {
        let token = ledger.add_admin_token("first run").await?;
        println!("Created an admin API token (shown once): {token}");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
