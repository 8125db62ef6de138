//! Configuration for `serve`: command-line flags, environment variables (`MINEPASS_*`) and an optional
//! TOML file, in that order of precedence, then built-in defaults that need no configuration at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;

use crate::store::Location;
use crate::vault::KeySource;
use crate::work::upstream::{Fallback, PoolConfig, UpstreamConfig};

/// Options of `serve`; every one is optional here and defaulted in [`ServeOptions::resolve`].
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeOptions {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MINEPASS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite ledger and keys [default: ./data].
    #[arg(long, env = "MINEPASS_DATA")]
    pub data: Option<PathBuf>,
    /// The ledger: `postgres://user:password@host:port/database` for a ledger a fleet of brokers
    /// shares, or a SQLite file [default: <data>/ledger.sqlite]. `MINEPASS_DATABASE` keeps a
    /// password out of argv.
    #[arg(long, env = "MINEPASS_DATABASE")]
    pub database: Option<String>,
    /// File holding the key-encryption key (64 hex digits) that seals the ledger's signing keys,
    /// content keys and site secrets; `MINEPASS_KEY` may hold the key itself instead
    /// [default: <data>/master.key, generated on first start].
    #[arg(long, env = "MINEPASS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Directory of the static site (SDK and demo) [default: ./www].
    #[arg(long, env = "MINEPASS_WWW")]
    pub www: Option<PathBuf>,
    /// Directory of the wasm build output [default: ./pkg].
    #[arg(long, env = "MINEPASS_PKG")]
    pub pkg: Option<PathBuf>,
    /// The broker's public URL, the `iss` of its tokens [default: http://<bound address>].
    #[arg(long, env = "MINEPASS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Smallest work per share in expected hashes [default: 4096].
    #[arg(long, env = "MINEPASS_MIN_SHARE_WORK")]
    pub min_share_work: Option<u64>,
    /// Largest work per share in expected hashes [default: 2^50].
    #[arg(long, env = "MINEPASS_MAX_SHARE_WORK")]
    pub max_share_work: Option<u64>,
    /// Most WebSocket connections one IP address may hold [default: 32].
    #[arg(long, env = "MINEPASS_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<u32>,
    /// Proxy (a fleet's load balancer) whose `X-Forwarded-For` names the visitor, for the
    /// per-address limits; repeat or comma-separate. Without it, limits count the proxy.
    #[arg(long = "trusted-proxy", env = "MINEPASS_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(default)]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Messages per second one connection may send (twice that in a burst) [default: 20].
    #[arg(long, env = "MINEPASS_MESSAGES_PER_SECOND")]
    pub messages_per_second: Option<u32>,
    /// Days of raw shares to keep on a PostgreSQL ledger; older days are retired hourly, as
    /// `ledger retain --keep-days` does [default: keep every share].
    #[arg(long, env = "MINEPASS_SHARE_RETENTION_DAYS")]
    pub share_retention_days: Option<u32>,
    /// Share interval vardiff aims at, in milliseconds [default: 4000].
    #[arg(long, env = "MINEPASS_SHARE_INTERVAL_MS")]
    pub share_interval_ms: Option<u64>,
    /// Upstream pool, `stratum+tcp://user:password@host:port`; repeat in priority order (the broker
    /// fails over down the list and returns when a better one is back). None: gate mode only.
    #[arg(long = "pool", env = "MINEPASS_POOLS", value_delimiter = ',')]
    #[serde(default)]
    pub pool: Vec<String>,
    /// While no pool has work: `gate` (unlock work, no coin) or `pause` (no work) [default: gate].
    #[arg(long, env = "MINEPASS_UPSTREAM_FALLBACK")]
    pub upstream_fallback: Option<Fallback>,
    /// Cap on browser sessions per upstream connection, below what its extranonce2 space allows;
    /// past it another connection is opened [default: the extranonce2 space].
    #[arg(long, env = "MINEPASS_UPSTREAM_MAX_SESSIONS")]
    pub upstream_max_sessions: Option<u64>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub database: Location,
    /// Where the key-encryption key comes from.
    pub key: KeySource,
    pub www: PathBuf,
    pub pkg: PathBuf,
    /// `None`: derived from the address actually bound.
    pub public_url: Option<String>,
    pub share_interval: Duration,
    pub min_share_work: u64,
    pub max_share_work: u64,
    pub max_connections_per_address: u32,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub messages_per_second: u32,
    pub share_retention_days: Option<u32>,
    /// `None`: gate mode only.
    pub upstream: Option<UpstreamConfig>,
}

impl ServeOptions {
    /// Reads a TOML file of the same keys (kebab-case), e.g. `listen = "127.0.0.1:9000"`.
    pub fn from_file(path: &Path) -> Result<ServeOptions> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Flags and environment win over the file; defaults fill the rest.
    pub fn resolve(self, file: ServeOptions) -> Result<ServeConfig> {
        let pools = if self.pool.is_empty() { &file.pool } else { &self.pool };
        let upstream = if pools.is_empty() {
            None
        } else {
            let pools = pools.iter().map(|url| PoolConfig::parse(url)).collect::<Result<Vec<_>>>()?;
            let mut upstream = UpstreamConfig::new(pools);
            upstream.fallback = self.upstream_fallback.or(file.upstream_fallback).unwrap_or(Fallback::Gate);
            upstream.max_sessions_per_connection = self.upstream_max_sessions.or(file.upstream_max_sessions);
            Some(upstream)
        };
        let listen = self.listen.or(file.listen).unwrap_or(([127, 0, 0, 1], 8080).into());
        let data: PathBuf = self.data.or(file.data).unwrap_or_else(|| "data".into());
        // The key itself only from the environment: never a flag (argv is visible to every user) nor
        // the config file (which sits beside the data).
        let key = match (std::env::var("MINEPASS_KEY"), self.key_file.or(file.key_file)) {
            (Ok(hex), _) => KeySource::Hex(hex),
            (Err(_), Some(path)) => KeySource::File(path),
            (Err(_), None) => KeySource::Default(data.join("master.key")),
        };
        let database = match self.database.or(file.database) {
            Some(url) => Location::parse(&url),
            None => Location::Sqlite(data.join("ledger.sqlite")),
        };
        Ok(ServeConfig {
            database,
            key,
            listen,
            upstream,
            public_url: self.public_url.or(file.public_url),
            data,
            www: self.www.or(file.www).unwrap_or_else(|| "www".into()),
            pkg: self.pkg.or(file.pkg).unwrap_or_else(|| "pkg".into()),
            share_interval: Duration::from_millis(
                self.share_interval_ms.or(file.share_interval_ms).unwrap_or(4000),
            ),
            min_share_work: self.min_share_work.or(file.min_share_work).unwrap_or(4096).max(1),
            max_share_work: self.max_share_work.or(file.max_share_work).unwrap_or(1 << 50).max(1),
            max_connections_per_address: self
                .max_connections_per_address
                .or(file.max_connections_per_address)
                .unwrap_or(32),
            trusted_proxies: if self.trusted_proxy.is_empty() {
                file.trusted_proxy
            } else {
                self.trusted_proxy
            },
            messages_per_second: self.messages_per_second.or(file.messages_per_second).unwrap_or(20).max(1),
            share_retention_days: self.share_retention_days.or(file.share_retention_days),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: ServeOptions =
            toml::from_str("listen = \"127.0.0.1:9000\"\nshare-interval-ms = 2000\n").unwrap();
        let flags = ServeOptions { share_interval_ms: Some(1000), ..Default::default() };
        let config = flags.resolve(file).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.share_interval, Duration::from_millis(1000));
        assert_eq!(config.data, PathBuf::from("data"));
        assert_eq!(config.database, Location::Sqlite(PathBuf::from("data/ledger.sqlite")));
        let file: ServeOptions = toml::from_str("database = \"postgres://mp@db:5432/ledger\"").unwrap();
        let config = ServeOptions::default().resolve(file).unwrap();
        assert_eq!(config.database, Location::Postgres("postgres://mp@db:5432/ledger".into()));
        assert!(toml::from_str::<ServeOptions>("lisen = \"x\"").is_err(), "typos in the file are errors");
        assert!(config.upstream.is_none(), "no pool: gate mode");
    }

    #[test]
    fn pools_come_in_priority_order_from_flags_or_the_file() {
        let file: ServeOptions = toml::from_str(
            "pool = [\"stratum+tcp://a.w:x@127.0.0.1:3333\", \"stratum+tcp://127.0.0.1:3334\"]\nupstream-fallback = \"pause\"\n",
        )
        .unwrap();
        let upstream = ServeOptions::default().resolve(file.clone()).unwrap().upstream.unwrap();
        assert_eq!(upstream.pools.len(), 2);
        assert_eq!((upstream.pools[0].user.as_str(), upstream.pools[1].port), ("a.w", 3334));
        assert_eq!(upstream.fallback, Fallback::Pause);
        let flags = ServeOptions { pool: vec!["stratum+tcp://b:y@10.0.0.1:1".into()], ..Default::default() };
        let upstream = flags.resolve(file).unwrap().upstream.unwrap();
        assert_eq!(upstream.pools.len(), 1, "flags replace the file's list");
        let bad = ServeOptions { pool: vec!["tcp://x:1".into()], ..Default::default() };
        assert!(bad.resolve(ServeOptions::default()).is_err());
    }
}
