//! A real `redis-server` per test: a free port on 127.0.0.1, its own temporary
//! directory, no persistence, killed when dropped.
//!
//! Without the binary the tests skip with a loud message, unless `ABIDE_REQUIRE_REDIS=1`
//! (CI), where they fail.

#![allow(dead_code, unreachable_pub)]

use abide_cap::store::{Admission, Decision, Observation, QuotaStore, StoreFuture};
use abide_cap::BucketKey;
use abide_redis::{RedisStore, RedisStoreBuilder};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const REDIS_SERVER: &str = "redis-server";

/// Whether `redis-server` can be started here; prints why not, or panics when
/// `ABIDE_REQUIRE_REDIS=1`.
pub fn redis_available(test: &str) -> bool {
    let found = Command::new(REDIS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("ABIDE_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("{test}: redis-server not found and ABIDE_REQUIRE_REDIS=1");
        }
        eprintln!(
            "\n!!! SKIPPED {test}: redis-server not found on PATH \
             (install it, e.g. `apt-get install redis-server`; CI sets ABIDE_REQUIRE_REDIS=1) !!!\n"
        );
    }
    found
}

/// A running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// Starts a server on a free port, or `None` (with a message) without the binary.
    pub fn start(test: &str) -> Option<RedisServer> {
        Self::start_with(test, &[])
    }

    /// Starts a server with extra arguments (`--cluster-enabled yes`, ...).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
        if !redis_available(test) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "abide-redis-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let args = extra.iter().map(|s| s.to_string()).collect();
        // A port taken between the probe and the server's bind: try another.
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
                args: Vec::clone(&args),
            };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("{test}: redis-server did not start");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // The port was just released by a killed process: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut child) = cmd.spawn() else {
            return false;
        };
        // Ready when it accepts connections; a server that exited (port taken) is not.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A store on its own server, kept alive as long as the store: what the behaviour suite
/// runs on.
#[derive(Debug)]
pub struct ServedStore {
    pub store: RedisStore,
    pub server: RedisServer,
}

impl ServedStore {
    pub async fn start(test: &str) -> Option<ServedStore> {
        Self::start_with(test, |b| b).await
    }

    pub async fn start_with(
        test: &str,
        configure: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
    ) -> Option<ServedStore> {
        let server = RedisServer::start(test)?;
        let store = configure(RedisStore::builder(&server.url()))
            .connect()
            .await
            .expect("connect to the test's redis-server");
        Some(ServedStore { store, server })
    }
}

impl QuotaStore for ServedStore {
    fn admit(&self, admission: &Admission<'_>) -> StoreFuture<Decision> {
        self.store.admit(admission)
    }
    fn observe(&self, observation: &Observation<'_>) -> StoreFuture<()> {
        self.store.observe(observation)
    }
    fn pause(&self, key: &BucketKey, until: tokio::time::Instant) -> StoreFuture<()> {
        self.store.pause(key, until)
    }
    fn exhaust(&self, key: &BucketKey, until: tokio::time::Instant) -> StoreFuture<()> {
        self.store.exhaust(key, until)
    }
    fn cancel(&self, admission: &Admission<'_>) -> StoreFuture<()> {
        self.store.cancel(admission)
    }
}
