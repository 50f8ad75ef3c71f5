//! A real `nats-server -js` for tests: a free loopback port, a temporary store
//! directory, stopped by its pid.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Set to `1` to skip the tests that need `nats-server` (CI never sets it: there the
/// tests fail without a server).
pub const SKIP_VAR: &str = "RODA_BRIDGE_SKIP_NATS";

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub url: String,
    starts: u32,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server, or returns `None` (after saying so) when `RODA_BRIDGE_SKIP_NATS=1`.
    /// Panics when `nats-server` cannot be started.
    pub fn start() -> Option<NatsServer> {
        Self::start_with("")
    }

    /// [`start`](Self::start) with extra lines of server configuration.
    pub fn start_with(config: &str) -> Option<NatsServer> {
        if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
            eprintln!("SKIP: {SKIP_VAR}=1, not starting nats-server");
            return None;
        }
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
            l.local_addr().unwrap().port()
        };
        let mut server = NatsServer {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            url: format!("nats://127.0.0.1:{port}"),
            starts: 0,
            config: None,
        };
        if !config.is_empty() {
            let path = server.dir.path().join("server.conf");
            std::fs::write(&path, config).unwrap();
            server.config = Some(path);
        }
        server.spawn();
        Some(server)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let store = self.dir.path().join("store");
        let mut command = Command::new("nats-server");
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): install it (apt-get install nats-server) \
                     or set {SKIP_VAR}=1 to skip these tests"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("Server is ready") {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nats-server exited ({status}) at start:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready in 20 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&mut self, signal: Signal) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
    }

    /// Starts the server again on the same port and store directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        // The port may linger briefly after a stop; retry the start.
        self.spawn();
    }

    pub fn connection(&self) -> roda_bridge::Connection {
        roda_bridge::Connection::new(self.url.clone())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Records of 24 bytes whose value tells their sequence.
pub type Rec = [u64; 3];

pub fn rec(i: u64) -> Rec {
    [i, i.wrapping_mul(0x9E37_79B9_7F4A_7C15), !i]
}
