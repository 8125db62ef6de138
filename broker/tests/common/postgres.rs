//! A real, throwaway PostgreSQL server for the integration tests.
//!
//! The PostgreSQL ledger is tested against the real thing, not a fake: its triggers, constraints,
//! isolation and durability are the point of the tests. Each cluster is a fresh `initdb` in a temp
//! directory with a server on a loopback port, so tests need no running service, no passwords and
//! no shared state, and can run in parallel. The server keeps production's durability settings
//! (`fsync`, `synchronous_commit`, `full_page_writes` on) so that what the tests see about commits
//! holds in production.
//!
//! Nothing may outlive the test process: a leaked postmaster would hold memory and a port on a
//! 2-core CI machine for good. Every server is therefore a direct child of one process-wide thread
//! that never exits, and asks the kernel to SIGKILL it when that thread dies
//! (`PR_SET_PDEATHSIG`), which covers a test process that crashes or is killed. What a killed
//! server leaves behind (its directory and System V shared memory segment) is removed by the next
//! test process that starts a cluster, found by the owner's pid in the directory's name.
//!
//! Linux only (PDEATHSIG). Needs the PostgreSQL server binaries (`apt-get install postgresql`).

#![allow(dead_code)] // each test binary uses its own part

use std::env;
use std::fs::{self, DirBuilder, File};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// The role that the tests' URLs log in as. A superuser, so that tests may do anything in their
/// database (and the broker's migrations may create functions and triggers).
pub const ROLE: &str = "minepass";

/// Ports are drawn from here: below Linux's ephemeral range (32768-60999), where the kernel picks
/// the local ports of outgoing connections, so a port found free stays free from other tests'
/// client sockets until the server binds it.
const PORTS: std::ops::Range<u16> = 20000..32000;

/// How long a server may take to accept connections. Normally well under a second; generous
/// because CI runs the tests of several binaries at once on 2 cores.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running PostgreSQL cluster of its own: a data directory, a server on 127.0.0.1, and the
/// `minepass` role. Stopped and deleted when dropped.
pub struct Cluster {
    /// `minepass-pg-<pid>-<n>`: the data directory `data/`, the server's log and its unix socket.
    root: PathBuf,
    port: u16,
    tools: &'static Tools,
    /// The postmaster; `None` once stopped. Behind a mutex because the shared cluster is stopped
    /// through a `&'static` at process exit.
    server: Mutex<Option<Child>>,
}

impl Cluster {
    /// Starts a new cluster: `initdb` into a fresh directory, then a server listening on
    /// 127.0.0.1:<free port> with its unix socket in that directory, trust authentication for local
    /// and loopback connections, and a role `minepass`. Panics (with the server's log) if it cannot.
    pub fn start() -> Cluster {
        let tools = tools();
        let owner = server_owner();
        let base = base_dir(owner);
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| remove_stale(&base));

        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let root =
            base.join(format!("minepass-pg-{}-{}", process::id(), SERIAL.fetch_add(1, Ordering::Relaxed)));
        DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        if let Some(owner) = owner {
            std::os::unix::fs::chown(&root, Some(owner.uid), Some(owner.gid))
                .unwrap_or_else(|e| panic!("cannot give {} to the postgres user: {e}", root.display()));
        }
        // From here on the directory is ours to remove, whatever happens.
        let mut cluster = Cluster { root, port: 0, tools, server: Mutex::new(None) };

        // `--no-sync` skips only initdb's final fsync of the files it wrote: the template the
        // server starts from, not anything a test writes. Those files matter only until this process
        // ends (the directory is deleted then), and a machine crash would end the test run anyway;
        // the server itself runs with fsync on. It saves a third of initdb's time (~0.8 s of ~2.6 s
        // on 2 busy cores), where creating ~1,000 files dominates.
        let init = run_as(&tools.initdb, owner, &cluster.root)
            .arg("--pgdata")
            .arg(cluster.data())
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", tools.initdb.display()));
        if !init.status.success() {
            panic!(
                "initdb failed ({}):\n{}{}",
                init.status,
                String::from_utf8_lossy(&init.stdout),
                String::from_utf8_lossy(&init.stderr)
            );
        }

        // A port that was free a moment ago may be taken before the server binds it (by another
        // test starting a cluster): then the server exits with "Address already in use" and the
        // next port is tried.
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.port = free_port();
            match cluster.launch(owner) {
                Ok(server) => {
                    *cluster.server.get_mut().unwrap() = Some(server);
                    break;
                }
                Err(Launch::AddressInUse) if attempt < 10 => continue,
                Err(Launch::AddressInUse) => panic!("no free port after {attempt} attempts"),
                Err(Launch::Failed(why)) => panic!("{why}\nserver log:\n{}", cluster.log()),
            }
        }
        cluster.psql("postgres", &format!("CREATE ROLE {ROLE} SUPERUSER LOGIN"));
        cluster
    }

    /// The cluster of this test process, started on first use. It is never dropped (statics are
    /// not), so it is stopped and deleted when the process exits normally, and killed by the
    /// kernel when the process dies; tests share it through `create_database`, which is far
    /// cheaper than a cluster each.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(cluster) = SHARED.get() {
                cluster.stop();
            }
        }
        SHARED.get_or_init(|| {
            let cluster = Cluster::start();
            // SAFETY: registers a plain function; it runs once, at exit(), with no arguments.
            if unsafe { libc::atexit(stop_shared) } != 0 {
                eprintln!("warning: atexit failed; the shared PostgreSQL is left to the next test run");
            }
            cluster
        })
    }

    /// Creates a fresh, empty database and returns its URL,
    /// `postgres://minepass@127.0.0.1:<port>/t_<random hex>`. A database per test keeps tests
    /// independent at a fraction of a cluster's cost (it copies template1's ~300 files: ~0.1-0.4 s
    /// here, against ~1.5 s for a cluster).
    pub fn create_database(&self) -> String {
        let name = format!("t_{:016x}", random());
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {ROLE}"));
        format!("postgres://{ROLE}@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bootstrap superuser's URL (role and database `postgres`), for setting up and inspecting
    /// the cluster.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` in `database` as the superuser and returns psql's unaligned, tuples-only output
    /// (`|` between columns). Panics if a statement fails. For set-up and inspection from tests that
    /// have no client of their own at hand.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = without_pg_env(Command::new(&self.tools.psql))
            .args(["--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1"])
            .args(["--host=127.0.0.1", "--username=postgres"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--dbname={database}"))
            .arg(format!("--command={sql}"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.tools.psql.display()));
        if !output.status.success() {
            panic!(
                "psql {database} -c {sql:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The directory that holds the data directory, the log and the socket.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Starts the server on `self.port` and waits until it accepts connections.
    fn launch(&self, owner: Option<Owner>) -> Result<Child, Launch> {
        let log = File::create(self.log_path())
            .map_err(|e| Launch::Failed(format!("cannot create the log: {e}")))?;
        let log2 = log.try_clone().map_err(|e| Launch::Failed(format!("cannot share the log: {e}")))?;
        let mut command = run_as(&self.tools.postgres, owner, &self.root);
        command.arg("-D").arg(self.data()).stdin(Stdio::null()).stdout(log).stderr(log2);
        for setting in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.port),
            format!("unix_socket_directories={}", self.root.display()),
            "max_connections=200".to_owned(),
            // Small, because several clusters may run at once; the tests' data is tiny.
            "shared_buffers=32MB".to_owned(),
            // Production's durability, stated so that no default or conf file can change it.
            "fsync=on".to_owned(),
            "synchronous_commit=on".to_owned(),
            "full_page_writes=on".to_owned(),
            // Dynamic shared memory as files in the data directory rather than /dev/shm segments,
            // which a killed server would leak and nothing would remove.
            "dynamic_shared_memory_type=mmap".to_owned(),
        ] {
            command.arg("-c").arg(setting);
        }
        let mut server =
            spawn_tied(command).map_err(|e| Launch::Failed(format!("cannot start postgres: {e}")))?;

        // The postmaster writes "ready" as line 8 of postmaster.pid once it accepts connections
        // (what `pg_ctl -w` waits for). A bare connect would succeed earlier, while the server still
        // answers "the database system is starting up".
        let pid_file = self.data().join("postmaster.pid");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) =
                server.try_wait().map_err(|e| Launch::Failed(format!("cannot wait: {e}")))?
            {
                return Err(if self.log().contains("Address already in use") {
                    Launch::AddressInUse
                } else {
                    Launch::Failed(format!("postgres exited ({status}) before accepting connections"))
                });
            }
            let status = fs::read_to_string(&pid_file).unwrap_or_default();
            if status.lines().nth(7).is_some_and(|line| line.trim() == "ready") {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let _ = server.kill();
                let _ = server.wait();
                return Err(Launch::Failed(format!("postgres not ready after {READY_TIMEOUT:?}")));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the server, then deletes the directory.
    ///
    /// An immediate shutdown (SIGQUIT), not a fast one (SIGINT): a fast shutdown ends with a
    /// checkpoint that writes and fsyncs every dirty page and every new database's files, only for
    /// them to be deleted a moment later; on 2 busy cores that took 0.2-2.7 s per cluster, against
    /// ~0.1 s. Either way the postmaster ends every server process before it exits and removes its
    /// shared memory, so nothing is left writing into the directory being removed.
    ///
    /// Idempotent: runs from `Drop`, and for the shared cluster from `atexit`, so it must not panic.
    fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut server) = server {
            // SAFETY: signals our own child, which has not been reaped yet (so the pid is its).
            unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGQUIT) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(server.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    eprintln!(
                        "PostgreSQL on port {} did not stop in {STOP_TIMEOUT:?}; killing it",
                        self.port
                    );
                    let _ = server.kill();
                    let _ = server.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        discard(&self.root);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Launch {
    AddressInUse,
    Failed(String),
}

/// The PostgreSQL programs this module runs.
struct Tools {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

/// Finds the server binaries: the newest /usr/lib/postgresql/<version>/bin (Debian and Ubuntu keep
/// them off PATH there), else PATH.
fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let version = name.to_str()?.split('.').map(|n| n.parse().ok()).collect::<Option<_>>()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
            })
            .collect();
        versions.sort();
        let bin = versions.pop().map(|(_, bin)| bin);
        let find = |name: &str| {
            bin.iter()
                .cloned()
                .chain(env::var_os("PATH").iter().flat_map(env::split_paths))
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
                .unwrap_or_else(|| {
                    panic!(
                        "PostgreSQL's `{name}` is in neither /usr/lib/postgresql/*/bin nor PATH; the \
                         PostgreSQL tests need a local server: apt-get install postgresql"
                    )
                })
        };
        Tools { initdb: find("initdb"), postgres: find("postgres"), psql: find("psql") }
    })
}

/// The account that runs initdb and the server when we are root (PostgreSQL refuses to run as
/// root).
#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// `None` when not root: the server then runs as ourselves.
fn server_owner() -> Option<Owner> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    static OWNER: OnceLock<Owner> = OnceLock::new();
    Some(*OWNER.get_or_init(|| {
        // getpwnam_r, not getpwnam: other test threads may be looking up users too.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let mut buffer = vec![0 as libc::c_char; 16384];
        // SAFETY: every pointer is valid for the call, and the buffer's length is passed along.
        let error = unsafe {
            libc::getpwnam_r(c"postgres".as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found)
        };
        if found.is_null() {
            let why = match error {
                0 => String::new(),
                error => format!(" ({})", io::Error::from_raw_os_error(error)),
            };
            panic!(
                "running as root, and there is no `postgres` system user to run PostgreSQL as{why} \
                 (PostgreSQL refuses to run as root): apt-get install postgresql"
            );
        }
        Owner { uid: entry.pw_uid, gid: entry.pw_gid }
    }))
}

/// Where cluster directories go: the temp dir, unless the server could not use it there, then
/// /tmp. The postgres user must be able to reach it (root's TMPDIR may be under /root), and the
/// socket's path must fit a `sockaddr_un` (107 bytes).
fn base_dir(owner: Option<Owner>) -> PathBuf {
    let temp = env::temp_dir();
    let longest = temp.join("minepass-pg-4294967295-18446744073709551615/.s.PGSQL.65535");
    let reachable = owner.is_none_or(|owner| reachable_by(&temp, owner));
    if longest.as_os_str().len() <= 107 && reachable { temp } else { PathBuf::from("/tmp") }
}

/// Whether `owner` may search every directory down to `path`. Only the primary group counts: std
/// drops the supplementary groups when it changes the uid.
fn reachable_by(path: &Path, owner: Owner) -> bool {
    let Ok(path) = path.canonicalize() else { return false };
    path.ancestors().all(|dir| {
        fs::metadata(dir).is_ok_and(|meta| {
            let bit = if meta.uid() == owner.uid {
                0o100
            } else if meta.gid() == owner.gid {
                0o010
            } else {
                0o001
            };
            meta.mode() & bit != 0
        })
    })
}

/// A command for `program`, run as `owner` (if any) from `dir` (the inherited working directory
/// may be one the postgres user cannot enter), without the caller's PG* variables.
fn run_as(program: &Path, owner: Option<Owner>, dir: &Path) -> Command {
    let mut command = without_pg_env(Command::new(program));
    command.current_dir(dir);
    if let Some(owner) = owner {
        command.uid(owner.uid).gid(owner.gid);
    }
    command
}

/// Drops PGHOST, PGPORT, PGOPTIONS, PGDATA and the rest: a developer's settings must not point a
/// test at their own server or change this one's behaviour.
fn without_pg_env(mut command: Command) -> Command {
    for (name, _) in env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
    command
}

/// Spawns `command` as a child of a thread that lives as long as the process, and has the kernel
/// SIGKILL the child when that thread dies, which is when the process dies.
///
/// PDEATHSIG is tied to the thread that forked, not the process, hence one immortal thread rather
/// than the calling test's thread. It is cleared when the credentials change, and std runs
/// `pre_exec` closures after its setgroups/setgid/setuid, so the setting survives the switch to the
/// postgres user (and exec: the server binary is not set-uid).
fn spawn_tied(mut command: Command) -> io::Result<Child> {
    type Job = Box<dyn FnOnce() + Send>;
    static PARENT: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let parent = PARENT.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("postgres-parent".to_owned())
            .spawn(move || {
                for job in queue {
                    job();
                }
                // The sender lives in a static, so the queue never ends; never exit regardless.
                loop {
                    thread::park();
                }
            })
            .expect("cannot start the postgres parent thread");
        jobs
    });

    let our_pid = process::id() as libc::pid_t;
    // SAFETY: the closure only makes async-signal-safe system calls and does not allocate.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // If we died between fork and prctl, the signal was never sent: the child has been
            // reparented and must not go on.
            if libc::getppid() != our_pid {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply, spawned) = mpsc::channel();
    parent
        .send(Box::new(move || {
            let _ = reply.send(command.spawn());
        }))
        .expect("the postgres parent thread is gone");
    spawned.recv().expect("the postgres parent thread is gone")
}

/// A port in `PORTS` that nothing listens on right now.
fn free_port() -> u16 {
    let span = (PORTS.end - PORTS.start) as u64;
    for _ in 0..1000 {
        let port = PORTS.start + (random() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

/// 64 random bits, without a crate: std's per-process random hash keys over a counter and the time.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher
        .write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
}

/// Deletes the cluster directories in `base` whose owning process is gone (killed, so it could
/// not clean up).
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) =
            name.to_str().and_then(|n| n.strip_prefix("minepass-pg-")).and_then(|n| n.split_once('-'))
        else {
            continue;
        };
        let Ok(pid) = owner.0.parse::<libc::pid_t>() else { continue };
        // file_type does not follow symlinks: only real directories are removed.
        if pid as u32 == process::id() || process_exists(pid) || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        discard(&entry.path());
    }
}

fn process_exists(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Removes a stopped cluster's directory and, if its server was killed, the server's System V
/// shared memory segment. A clean shutdown removes the segment and postmaster.pid itself; a killed
/// server leaves both, and the segment would stay until reboot, since the server that would
/// reclaim it on its next start runs from this directory. Errors are ignored: another process may
/// be removing the same stale directory.
fn discard(root: &Path) {
    let lock = fs::read_to_string(root.join("data/postmaster.pid")).unwrap_or_default();
    let lines: Vec<&str> = lock.lines().collect();
    // Line 1: the postmaster's pid; line 7: the segment's key and id.
    let postmaster = lines.first().and_then(|l| l.trim().parse::<libc::pid_t>().ok());
    let segment =
        lines.get(6).and_then(|l| l.split_whitespace().nth(1)).and_then(|id| id.parse::<libc::c_int>().ok());
    if let (Some(postmaster), Some(segment)) = (postmaster, segment) {
        // SAFETY: shmid_ds is plain data; IPC_STAT fills it. A segment is removed only if that
        // postmaster created it and nothing is attached any more, so a reused id is left alone.
        unsafe {
            let mut stat: libc::shmid_ds = std::mem::zeroed();
            if libc::shmctl(segment, libc::IPC_STAT, &mut stat) == 0
                && stat.shm_cpid == postmaster
                && stat.shm_nattch == 0
            {
                libc::shmctl(segment, libc::IPC_RMID, std::ptr::null_mut());
            }
        }
    }
    let _ = fs::remove_dir_all(root);
}
