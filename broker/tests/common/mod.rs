//! What the broker's integration tests share: a broker on a loopback port with its own ledger, real
//! WebSocket clients, and native mining with the `minepass` kernel.

#![allow(dead_code)] // each test binary uses its own part

pub mod pool;
pub mod postgres;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use minepass::kernel::Job;
use minepass::protocol::{self, ServerMessage};
use minepass::target::Target;
use minepass_broker::http::StaticDirs;
use minepass_broker::session::Broker;
use minepass_broker::store::{Ledger, Location};
use minepass_broker::tokens::Tokens;
use minepass_broker::work::{Jobs, Vardiff};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Whether this run's suites use PostgreSQL (`MINEPASS_TEST_BACKEND=postgres`, which
/// `cargo xtask test` sets for its second pass over them); SQLite otherwise.
pub fn on_postgres() -> bool {
    std::env::var("MINEPASS_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// Says that a test checks something only one backend has, and returns true on the other: the
/// caller returns, and the run's output names the test and the reason (never a silent pass).
pub fn skip_on_postgres(test: &str, why: &str) -> bool {
    if on_postgres() {
        use std::io::Write;
        // Written to the handle, not through `eprintln!`, which the test harness captures.
        let _ = writeln!(std::io::stderr(), "SKIPPED on PostgreSQL: {test}: {why}");
    }
    on_postgres()
}

/// The ledger of a test's data directory: on PostgreSQL a fresh database in the test process's
/// throwaway cluster, remembered in `data/database-url` so that a restarted broker or a reopened
/// ledger finds the same one; on SQLite `data/ledger.sqlite`.
pub fn ledger_location(data: &std::path::Path) -> Location {
    if !on_postgres() {
        return Location::Sqlite(data.join("ledger.sqlite"));
    }
    let remembered = data.join("database-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Location::Postgres(url);
    }
    let url = postgres::Cluster::shared().create_database();
    std::fs::write(&remembered, &url).unwrap();
    Location::Postgres(url)
}

/// Runs statements on a ledger behind the broker's back (tests that tamper or inspect); the
/// first error is returned.
pub async fn raw_execute(location: &Location, statements: &[&str]) -> Result<(), sqlx::Error> {
    match location {
        Location::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?;
            for statement in statements {
                sqlx::query(statement).execute(&pool).await?;
            }
            pool.close().await;
        }
        Location::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await?;
            for statement in statements {
                sqlx::query(statement).execute(&pool).await?;
            }
            pool.close().await;
        }
    }
    Ok(())
}

/// The first column of a query's rows, as text (cast in the query where needed).
pub async fn raw_strings(location: &Location, sql: &str) -> Vec<String> {
    match location {
        Location::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        Location::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let rows = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

/// A broker on 127.0.0.1:0 with its own ledger directory, and a demo site with one content item.
pub struct TestBroker {
    pub address: SocketAddr,
    pub ledger: Ledger,
    pub location: Location,
    pub site_key: String,
    pub site_secret: String,
    _data: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const CONTENT_WORK: u128 = 1 << 16;

impl TestBroker {
    pub async fn start() -> TestBroker {
        TestBroker::start_with(|_| {}).await
    }

    /// Starts a broker after `configure` has adjusted its limits.
    pub async fn start_with(configure: impl FnOnce(&mut Broker)) -> TestBroker {
        // Tiny shares (2^12 hashes) so a test client finds one in about a millisecond.
        let vardiff = Vardiff { interval: Duration::from_millis(50), min_work: 1 << 12, max_work: 1 << 12 };
        TestBroker::start_with_jobs(Jobs::gate(), vardiff, configure).await
    }

    /// Starts a broker with `jobs` as its work source.
    pub async fn start_with_jobs(
        jobs: Jobs,
        vardiff: Vardiff,
        configure: impl FnOnce(&mut Broker),
    ) -> TestBroker {
        let data = tempfile::tempdir().unwrap();
        let location = ledger_location(data.path());
        let ledger = Ledger::open(location.clone(), Arc::new(minepass_broker::vault::Vault::ephemeral()))
            .await
            .unwrap();
        assert_eq!(ledger.backend_name(), if on_postgres() { "postgres" } else { "sqlite" });
        let site = ledger.add_site("Test site").await.unwrap();
        ledger.put_content(&site.key, "article", "Article", CONTENT_WORK).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let tokens = Tokens::load(&ledger, format!("http://{address}")).await.unwrap();
        let mut broker = Broker::new(ledger.clone(), jobs, vardiff, tokens);
        configure(&mut broker);
        let broker = Arc::new(broker);
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let dirs = StaticDirs { www: "www".into(), pkg: "pkg".into() };
        tokio::spawn(async move {
            minepass_broker::run(listener, broker, &dirs, async {
                let _ = stop.await;
            })
            .await
            .unwrap();
        });
        TestBroker {
            address,
            ledger,
            location,
            site_key: site.key,
            site_secret: site.secret,
            _data: data,
            shutdown: Some(shutdown),
        }
    }

    /// The ledger's SQLite file (tests that only SQLite can run).
    pub fn ledger_path(&self) -> std::path::PathBuf {
        let Location::Sqlite(path) = &self.location else { panic!("not a SQLite ledger") };
        path.clone()
    }

    /// `POST /api/v1/tokens/verify` as a publisher would: (HTTP status, JSON body).
    pub async fn verify_token(&self, secret: &str, token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/v1/tokens/verify", self.address))
            .bearer_auth(secret)
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// An admin API request: (HTTP status, JSON body).
    pub async fn admin(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = reqwest::Client::new()
            .request(method, format!("http://{}/api/v1/admin{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn connect(&self) -> Socket {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws", self.address)).await.unwrap();
        socket
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A hello for the publisher-vouched `user`, with the proof the publisher's server would mint from
/// the site secret.
pub fn hello(site: &str, secret: &str, user: &str, content: Option<&str>) -> Value {
    let mut hello = anonymous_hello(site, content);
    let exp = minepass_broker::store::now_ms() / 1000 + 3600;
    hello["user"] = json!(user);
    hello["user_proof"] = json!(minepass_broker::identity::user_proof(secret, site, user, exp));
    hello
}

/// A hello of a new anonymous visitor (no user: the broker issues one).
pub fn anonymous_hello(site: &str, content: Option<&str>) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut hello = json!({
        "type": "hello", "v": 1, "site": site,
        "consent": {"id": "consent-1", "given_at": now - 1000, "expires_at": now + 86_400_000},
        "client": {"threads": 2, "simd": false, "hashrate": 1000},
    });
    if let Some(content) = content {
        hello["content"] = json!(content);
    }
    hello
}

pub async fn send(socket: &mut Socket, value: &Value) {
    socket.send(Message::Text(value.to_string().into())).await.unwrap();
}

pub async fn recv(socket: &mut Socket) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("broker answers")
            .unwrap()
            .unwrap();
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Mines a job natively from nonce position `from`, one position at a time so that no share is
/// skipped; returns the first nonce that meets the job's target and the position after it.
pub fn mine_from(job: &protocol::Job, from: u32) -> (u32, u32) {
    let header = hex::decode(&job.header).unwrap();
    let target = Target::from_le_bytes(&hex::decode(&job.target).unwrap()).unwrap();
    let kernel = Job::new(&header, target).unwrap();
    let mut hits = Vec::new();
    let mut position = from;
    while hits.is_empty() {
        kernel.scan(position, 1, &mut hits).unwrap();
        position += 1;
    }
    (hits[0], position)
}

pub fn mine(job: &protocol::Job) -> u32 {
    mine_from(job, 0).0
}

pub async fn open_session(broker: &TestBroker, user: &str) -> (Socket, protocol::Job) {
    let mut socket = broker.connect().await;
    send(&mut socket, &hello(&broker.site_key, &broker.site_secret, user, Some("article"))).await;
    let ServerMessage::Welcome(welcome) = recv(&mut socket).await else { panic!("expected welcome") };
    assert_eq!(welcome.v, protocol::PROTOCOL_VERSION);
    assert_eq!(welcome.progress.len(), 1);
    let ServerMessage::Job(job) = recv(&mut socket).await else { panic!("expected job") };
    (socket, job)
}

/// A broker process started from the built binary, with its stdout lines read until it listens.
pub struct BrokerProcess {
    pub child: std::process::Child,
    pub address: SocketAddr,
    /// The demo site key and secret printed on first start (empty on later starts).
    pub demo_site: String,
    pub demo_secret: String,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // SIGKILL on Unix; a no-op error if the test already killed it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` on 127.0.0.1:0 with tiny fixed shares, the data directory `data` (and its
/// [`ledger_location`]), and `extra` flags.
pub fn start_process(data: &std::path::Path, extra: &[&str]) -> BrokerProcess {
    start_process_with(data, extra, &[])
}

/// [`start_process`] with environment variables (`MINEPASS_KEY`, say); `extra` may name its own
/// `--database`.
pub fn start_process_with(data: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> BrokerProcess {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_minepass-broker"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--min-share-work", "4096", "--max-share-work", "4096"])
        .arg("--data")
        .arg(data)
        .envs(env.iter().copied());
    if !extra.contains(&"--database")
        && let Location::Postgres(url) = ledger_location(data)
    {
        command.arg("--database").arg(url);
    }
    let mut child =
        command.args(extra).env("RUST_LOG", "warn").stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Owned from here on, so a failed start is still killed and reaped (Drop).
    let mut process = BrokerProcess {
        child,
        address: ([127, 0, 0, 1], 0).into(),
        demo_site: String::new(),
        demo_secret: String::new(),
    };
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("broker prints its address").unwrap();
        if let Some(key) = line.trim().strip_prefix("site key:") {
            process.demo_site = key.trim().to_owned();
        }
        if let Some(secret) = line.trim().strip_prefix("site secret:") {
            process.demo_secret = secret.split_whitespace().next().unwrap().to_owned();
        }
        if let Some(rest) = line.strip_prefix("MinePass broker listening on http://") {
            process.address = rest.split('/').next().unwrap().parse().unwrap();
            // Keep draining stdout so the broker never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return process;
        }
    }
}
