//! Shared fixtures: a test PKI, a server started on ephemeral ports with a
//! config written by the test, and HTTPS clients presenting certificates.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound::AppState;
use certbound::config::Source;
use certbound::keys::{Alg, KeySet};
use certbound::server::Server;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// A certificate and its key.
pub struct Identity {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// x5t#S256 computed here, independently of the server's code.
    pub fn thumbprint(&self) -> String {
        use sha2::Digest;
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&self.cert_der))
    }
}

/// A CA that issues server and client certificates.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

impl Pki {
    pub fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(&[(DnType::CommonName, cn)]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn server(&self) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        identity(cert, key)
    }

    /// A client certificate with this subject and these SANs.
    pub fn client(&self, subject: &[(DnType, &str)], sans: Vec<SanType>) -> Identity {
        self.client_with_eku(subject, sans, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A client certificate with these extended key usages (none: no
    /// extension at all).
    pub fn client_with_eku(
        &self,
        subject: &[(DnType, &str)],
        sans: Vec<SanType>,
        ekus: Vec<ExtendedKeyUsagePurpose>,
    ) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(subject);
        params.subject_alt_names = sans;
        params.extended_key_usages = ekus;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        identity(cert, key)
    }
}

/// A self-signed client certificate (RFC 8705 §2.2).
pub fn self_signed(cn: &str) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = dn(&[(DnType::CommonName, cn)]);
    let cert = params.self_signed(&key).unwrap();
    identity(cert, key)
}

fn identity(cert: rcgen::Certificate, key: KeyPair) -> Identity {
    Identity {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn dn(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in attrs {
        dn.push(t.clone(), *v);
    }
    dn
}

/// The files a server is started with: PKI, TLS and signing keys, config.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub config: std::path::PathBuf,
}

impl Setup {
    /// Writes the PKI, keys and a config whose listeners use port 0; `extra`
    /// (TOML) follows the generated `[server]`, `[keys]`, `[revocation]` and
    /// `[mtls]` basics, so keys before its first table land in `[mtls]`.
    /// `trusted` is the `mtls.trusted_proxies` list.
    pub fn new(extra: &str, trusted: &str, alg: Alg) -> Self {
        Self::with_server("", extra, trusted, alg)
    }

    /// As [`Self::new`], with `server` (TOML lines) added to `[server]`.
    pub fn with_server(server: &str, extra: &str, trusted: &str, alg: Alg) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("test CA");
        let server_id = pki.server();
        let path = |name: &str| dir.path().join(name);
        let body_limit = if server.contains("max_body_bytes") {
            ""
        } else {
            "max_body_bytes = 4096"
        };
        std::fs::write(path("ca.crt"), &pki.ca_pem).unwrap();
        std::fs::write(path("server.crt"), &server_id.cert_pem).unwrap();
        std::fs::write(path("server.key"), &server_id.key_pem).unwrap();
        certbound::keys::generate_key(&path("keys"), alg, 1).unwrap();
        let toml = format!(
            r#"
issuer = "https://certbound.test"
[server]
https = "127.0.0.1:0"
http = "127.0.0.1:0"
tls_certificate = "{dir}/server.crt"
tls_private_key = "{dir}/server.key"
{body_limit}
{server}
[keys]
dir = "{dir}/keys"
[revocation]
file = "{dir}/data/revocations.log"
[mtls]
client_certificate_header = "{HEADER}"
trusted_proxies = {trusted}
trust_anchors = "{dir}/ca.crt"
{extra}
"#,
            dir = dir.path().display()
        );
        std::fs::write(path("certbound.toml"), toml).unwrap();
        Self {
            config: path("certbound.toml"),
            dir,
            pki,
        }
    }

    /// The revocation list file of this setup.
    pub fn revocations(&self) -> std::path::PathBuf {
        self.dir.path().join("data/revocations.log")
    }
}

/// Where a running server listens, and HTTPS clients for it.
pub struct Api {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    ca_pem: String,
}

/// A server running in the test process.
pub struct TestServer {
    api: Api,
    pub pki: Pki,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    admission: Arc<certbound::server::admission::Admission>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::ops::Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The certificate header name the test servers use.
pub const HEADER: &str = "x-client-cert";

impl TestServer {
    /// The server's current settings.
    pub fn settings(&self) -> Arc<certbound::settings::Settings> {
        self.state.settings()
    }

    /// Connections the server holds open now.
    pub fn open_connections(&self) -> usize {
        self.admission.open()
    }

    /// Stops the server and hands back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Starts a server in this process; `extra` as for [`Setup::new`].
    pub async fn start(extra: &str) -> Self {
        Self::start_with(extra, "[\"127.0.0.1/32\"]", Alg::ES256).await
    }

    pub async fn start_with(extra: &str, trusted: &str, alg: Alg) -> Self {
        Self::start_setup(Setup::new(extra, trusted, alg)).await
    }

    /// Starts the server of `setup` in this process.
    pub async fn start_setup(setup: Setup) -> Self {
        let state =
            Arc::new(AppState::open(Source::File(setup.config.clone())).expect("state builds"));
        let server = Server::bind(state.clone()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let admission = server.admission();
        let api = Api {
            https: server.https_addr().unwrap(),
            http: server.http_addr(),
            ca_pem: setup.pki.ca_pem.clone(),
        };
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            api,
            pki: setup.pki,
            state,
            dir: setup.dir,
            admission,
            shutdown: Some(tx),
        }
    }
}

impl Api {
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.expect("an http listener"))
    }

    /// An HTTPS client trusting the test CA, presenting `id` if given.
    pub fn client(&self, id: Option<&Identity>) -> reqwest::Client {
        self.client_with(id, reqwest::redirect::Policy::default())
    }

    /// As [`Self::client`], with a redirect policy.
    pub fn client_with(
        &self,
        id: Option<&Identity>,
        redirects: reqwest::redirect::Policy,
    ) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.tls_config(id))
            .redirect(redirects)
            .build()
            .unwrap()
    }

    /// A rustls client configuration trusting the test CA, presenting `id`.
    pub fn tls_config(&self, id: Option<&Identity>) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pem_der(&self.ca_pem)))
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        match id {
            Some(id) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(id.cert_der.clone())],
                    PrivateKeyDer::try_from(pem_der(&id.key_pem)).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        }
    }

    /// POSTs a form and returns (status, JSON body, headers).
    pub async fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let body = serde_urlencoded(form);
        let mut req = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json, headers)
    }

    /// A client_credentials token over mTLS; panics unless 200.
    pub async fn token(&self, id: &Identity, client_id: &str) -> String {
        let (status, body, _) = self
            .post(
                &self.client(Some(id)),
                &self.https_url("/oauth2/token"),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                ],
                &[],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }
}

/// `certbound serve` as a child process, so it can be killed and restarted.
/// When the tests run as root, it runs as `nobody` (uid 65534) so that file
/// permissions apply to it.
pub struct ChildServer {
    api: Api,
    child: std::process::Child,
    log: Arc<std::sync::Mutex<String>>,
}

impl std::ops::Deref for ChildServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether this process runs as root (a file it creates is owned by uid 0).
pub fn running_as_root(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join(".uid-probe");
    std::fs::write(&probe, "").unwrap();
    let root = std::fs::metadata(&probe).unwrap().uid() == 0;
    std::fs::remove_file(probe).unwrap();
    root
}

const NOBODY: u32 = 65534;

/// Files an operator command (run as root by the tests) wrote under the
/// setup's directory, handed to the server's user as an operator would.
pub fn hand_to_server(dir: &std::path::Path) {
    if running_as_root(dir) {
        chown_all(dir, &dir.join("certbound"));
    }
}

/// Hands `path` and everything under it to nobody, except `skip` (the
/// linked binary, whose inode is shared with the build directory).
fn chown_all(path: &std::path::Path, skip: &std::path::Path) {
    if path == skip {
        return;
    }
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_all(&entry.unwrap().path(), skip);
        }
    }
}

impl ChildServer {
    /// Starts the server of `setup`; `Err(output)` if it exits instead of
    /// listening within 30 s.
    pub fn spawn(setup: &Setup) -> Result<Self, String> {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let dir = setup.dir.path();
        let mut command = if running_as_root(dir) {
            // nobody may not reach the build directory: link the binary in.
            let bin = dir.join("certbound");
            if !bin.exists() && std::fs::hard_link(env!("CARGO_BIN_EXE_certbound"), &bin).is_err() {
                std::fs::copy(env!("CARGO_BIN_EXE_certbound"), &bin).unwrap();
            }
            chown_all(dir, &bin);
            let mut c = std::process::Command::new(&bin);
            c.uid(NOBODY).gid(NOBODY);
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_certbound"))
        };
        let mut child = command
            .arg("--config")
            .arg(&setup.config)
            .arg("serve")
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("CERTBOUND_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut output = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_ansi(&line);
                    if line.contains("listening (https")
                        && let Some(https) = listen_addr(&line)
                    {
                        // The plain listener is announced next, if any.
                        let http = rx
                            .recv_timeout(std::time::Duration::from_secs(5))
                            .ok()
                            .map(|l| strip_ansi(&l))
                            .filter(|l| l.contains("listening (plain http"))
                            .and_then(|l| listen_addr(&l));
                        // Keep draining output so the child never blocks,
                        // and keep it for the test to read.
                        let log = Arc::new(std::sync::Mutex::new(String::new()));
                        let kept = log.clone();
                        std::thread::spawn(move || {
                            while let Ok(line) = rx.recv() {
                                let mut log = kept.lock().unwrap_or_else(|e| e.into_inner());
                                log.push_str(&strip_ansi(&line));
                                log.push('\n');
                            }
                        });
                        return Ok(Self {
                            api: Api {
                                https,
                                http,
                                ca_pem: setup.pki.ca_pem.clone(),
                            },
                            child,
                            log,
                        });
                    }
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(output);
                }
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged since it started listening.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to 20 s for a log line containing `text`, seen after
    /// `skip` bytes of log; the log's length then.
    pub async fn wait_for_log(&self, text: &str, skip: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = self.log();
            if log.get(skip..).is_some_and(|l| l.contains(text)) {
                return log.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in the log:\n{log}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .and_then(|a| a.parse().ok())
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Form-encodes pairs (repeats allowed, so tests can send duplicates).
pub fn serde_urlencoded(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Decodes a JWT segment without verifying.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies a JWT with the published JWKS only, as a resource server would
/// (ES256, issuer `https://certbound.test`, `audience`); returns its claims.
pub async fn verify_with_jwks(api: &Api, token: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = api
        .client(None)
        .get(api.https_url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://certbound.test"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("verifies with the JWKS")
        .claims
}

/// A JWS over `header` and `claims` exactly as given, signed with the
/// server's current key: a token only the server could have made.
pub fn forge(keys: &KeySet, header: &Value, claims: &Value) -> String {
    certbound::token::sign_segments(
        keys.current(),
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

/// The header the server's current key signs access tokens with.
pub fn access_header(keys: &KeySet) -> Value {
    let key = keys.current();
    serde_json::json!({"alg": key.alg.name(), "kid": key.kid, "typ": "at+jwt"})
}
