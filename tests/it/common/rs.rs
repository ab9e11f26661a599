//! Resource servers for tests: the `certbound-verify` examples as child
//! processes, real nginx in front of them, and a counting forwarder that
//! stands between a resource server and the authorization server's JWKS
//! (counting the requests that reach the server, and able to go down).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An example resource server (`axum_resource_server` or
/// `poem_resource_server`) as a child process.
pub struct ExampleRs {
    child: Child,
    /// `https://127.0.0.1:PORT` or `http://…`.
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for ExampleRs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where cargo put the examples (built by `cargo test --workspace
/// --all-features`, which `cargo xtask test` runs).
fn example_path(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_certbound"));
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo xtask test` (or `cargo test --workspace --all-features`), which builds certbound-verify's examples",
        path.display()
    );
    path
}

impl ExampleRs {
    /// Starts example `name` with these settings (`RS_LISTEN` defaults
    /// to a free loopback port) and waits until it listens.
    pub fn spawn(name: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(example_path(name));
        command
            .env("RS_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "certbound_verify=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("resource server on ") {
                    let _ = tx.send(url.to_string());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{name} did not start:\n{}", log.lock().unwrap()));
        Self { child, url, log }
    }

    /// What it has printed and logged.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// A plain-HTTP forwarder to `upstream` that counts the requests it
/// forwards, and answers 503 itself while `down`.
pub struct Forwarder {
    pub url: String,
    pub requests: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Forwarder {
    pub async fn start(upstream: String, client: reqwest::Client) -> Self {
        use poem::{EndpointExt, IntoResponse, Response, handler};
        let requests = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (count, off) = (requests.clone(), down.clone());
        #[handler]
        async fn forward(
            poem::web::Data(ctx): poem::web::Data<&(
                String,
                reqwest::Client,
                Arc<AtomicU64>,
                Arc<AtomicBool>,
            )>,
        ) -> Response {
            let (upstream, client, count, down) = ctx;
            if down.load(Ordering::SeqCst) {
                return poem::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            count.fetch_add(1, Ordering::SeqCst);
            let answer = client.get(upstream).send().await.unwrap();
            let status = answer.status().as_u16();
            let cache = answer
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_string());
            let body = answer.bytes().await.unwrap();
            let mut response = Response::builder()
                .status(poem::http::StatusCode::from_u16(status).unwrap())
                .content_type("application/json");
            if let Some(cache) = cache {
                response = response.header("cache-control", cache);
            }
            response.body(body.to_vec())
        }
        let app = poem::Route::new()
            .at("/jwks", poem::get(forward))
            .data((upstream, client, count, off));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = poem::Server::new(poem::listener::TcpListener::bind(addr));
        tokio::spawn(async move {
            let _ = server
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = stopped.await;
                    },
                    None,
                )
                .await;
        });
        wait_for_port(addr).await;
        Self {
            url: format!("http://{addr}/jwks"),
            requests,
            down,
            _stop: stop,
        }
    }

    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Waits up to 10 s until something accepts connections at `addr`.
pub async fn wait_for_port(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's nginx in the foreground, as one process, on a configuration
/// of `servers` (`server { … }` blocks) with every path in `dir`.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    pub async fn start(dir: &Path, servers: &str, ports: &[u16]) -> Self {
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n{servers}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: `cargo xtask test` installs it");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let nginx = Self {
            child,
            dir: dir.to_path_buf(),
        };
        for port in ports {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen on {addr}:\n{}",
                    nginx.error_log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        nginx
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
