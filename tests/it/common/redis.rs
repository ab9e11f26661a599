//! Real Redis for the replica tests: Debian's `redis-server` on a free
//! loopback port with its data in a test directory (never the system
//! service), and three certbound replicas sharing it behind nginx.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rs::{Nginx, free_port};
use super::{Api, ChildServer, Setup};

/// Debian's `redis-server` (also Sentinel, with `--sentinel`).
fn redis_server() -> &'static str {
    ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("redis-server is not installed: `cargo xtask test` installs it")
}

/// `redis-server` as a child process, restartable on the same port and data.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    /// Starts Redis with its data in `dir`, `appendonly yes` and
    /// `appendfsync` as given, plus `extra` arguments.
    pub async fn start(dir: &Path, appendfsync: &str, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            &dir.join("redis.log").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut redis = Self {
            child: None,
            port,
            dir: dir.to_path_buf(),
            args,
        };
        redis.spawn().await;
        redis
    }

    async fn spawn(&mut self) {
        let child = Command::new(redis_server())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection of the test's own.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING").query::<String>(&mut self.connection()?)?;
        Ok(())
    }

    /// The members of certbound's sorted set (`<kind> <id>`).
    pub fn members(&self) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg("{certbound}:revocations")
            .arg(0)
            .arg(-1)
            .query(&mut self.connection().unwrap())
            .unwrap()
    }

    /// SIGKILL: no shutdown, nothing flushed beyond what fsync had done.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops as an operator would (SIGTERM: Redis flushes and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

/// Three replicas of the real binary on one Redis, with nginx in front
/// terminating TLS and passing the client certificate on in a header
/// (round robin over the replicas' plain listeners).
pub struct Replicas {
    pub setup: Setup,
    pub redis: RedisServer,
    pub replicas: Vec<ChildServer>,
    /// The load balancer, as a client sees it.
    pub lb: Api,
    _nginx: Nginx,
}

/// Replica settings the tests use: 1 s of staleness allowed, and room for
/// many connections from the load balancer's address.
pub const REPLICA_SERVER: &str =
    "max_connections_per_address = 4096\nmax_requests_in_flight = 4096";

impl Replicas {
    /// Redis, then three replicas (the first creates the shared sealing
    /// key before the others start), then nginx.
    pub async fn start(extra: &str) -> Self {
        let setup = Setup::with_server(
            REPLICA_SERVER,
            extra,
            "[\"127.0.0.1/32\"]",
            certbound::keys::Alg::ES256,
        );
        let redis = RedisServer::start(&setup.dir.path().join("redis"), "always", &[]).await;
        let mut replicas = Vec::new();
        for i in 0..3 {
            replicas.push(Self::spawn_replica(&setup, &redis.url(), i));
        }
        let dir = setup.dir.path().join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let d = setup.dir.path().display();
        let upstreams: String = replicas
            .iter()
            .map(|r| format!("  server {};\n", r.http.unwrap()))
            .collect();
        let servers = format!(
            "upstream certbound {{\n{upstreams}}}\n\
             server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {d}/server.crt;\n ssl_certificate_key {d}/server.key;\n\
             ssl_verify_client optional_no_ca;\n location / {{\n  proxy_pass http://certbound;\n\
             proxy_set_header {header} $ssl_client_escaped_cert;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n }}\n}}\n",
            header = super::HEADER,
        );
        let nginx = Nginx::start(&dir, &servers, &[port]).await;
        let lb = Api {
            https: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            http: None,
            ca_pem: setup.pki.ca_pem.clone(),
            base: String::new(),
        };
        Self {
            setup,
            redis,
            replicas,
            lb,
            _nginx: nginx,
        }
    }

    /// Replica `i` of `setup` on the Redis at `url` (its own control
    /// socket).
    pub fn spawn_replica(setup: &Setup, url: &str, i: usize) -> ChildServer {
        let socket = setup.dir.path().join(format!("replica{i}.sock"));
        ChildServer::spawn_env(
            setup,
            &[
                ("CERTBOUND_REVOCATION__BACKEND", "redis".into()),
                ("CERTBOUND_REVOCATION__REDIS__URL", url.to_string()),
                ("CERTBOUND_REVOCATION__REDIS__MAX_STALENESS", "1".into()),
                (
                    "CERTBOUND_SERVER__CONTROL_SOCKET",
                    socket.display().to_string(),
                ),
            ],
        )
        .unwrap_or_else(|log| panic!("replica {i} did not start:\n{log}"))
    }

    /// Kills replica `i` (SIGKILL) and starts it again.
    pub fn restart_replica(&mut self, i: usize) {
        self.replicas[i].kill();
        self.replicas[i] = Self::spawn_replica(&self.setup, &self.redis.url(), i);
    }
}

/// A TCP proxy to Redis that can be paused: bytes stop flowing both ways
/// (connections stay open, as in a network partition) until resumed.
pub struct PausableProxy {
    pub port: u16,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PausableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PausableProxy {
    pub async fn start(upstream: u16) -> Self {
        use std::sync::atomic::AtomicBool;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = std::sync::Arc::new(AtomicBool::new(false));
        let flag = paused.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, flag.clone()), pipe(sr, cw, flag));
                });
            }
        });
        Self { port, paused, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pause(&self, paused: bool) {
        self.paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding data while `paused`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while paused.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `certbound revocations ARGS` on the Redis at `url` with `setup`'s
/// configuration (and `env`); its stdout, after asserting success.
pub fn revocations_cli(setup: &Setup, url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .arg("--config")
        .arg(&setup.config)
        .arg("revocations")
        .args(args)
        .env("CERTBOUND_REVOCATION__BACKEND", "redis")
        .env("CERTBOUND_REVOCATION__REDIS__URL", url)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A primary, one replica of it and one Sentinel watching them (failover
/// after 1 s of silence).
pub struct SentinelSet {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel: Child,
    pub sentinel_port: u16,
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}

impl SentinelSet {
    pub async fn start(dir: &Path) -> Self {
        let primary = RedisServer::start(&dir.join("primary"), "always", &[]).await;
        let replica = RedisServer::start(
            &dir.join("replica"),
            "always",
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        )
        .await;
        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
                dir.display(),
                primary.port
            ),
        )
        .unwrap();
        let sentinel = Command::new(redis_server())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let set = Self {
            primary,
            replica,
            sentinel,
            sentinel_port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let linked = || -> Option<bool> {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut set.replica.connection().ok()?)
                .ok()?;
            Some(info.contains("master_link_status:up"))
        };
        while set.primary_port() != Some(set.primary.port) || linked() != Some(true) {
            assert!(Instant::now() < deadline, "Sentinel did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        set
    }

    /// The primary's port as Sentinel names it.
    pub fn primary_port(&self) -> Option<u16> {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut c)
            .ok()?;
        Some(port)
    }
}
