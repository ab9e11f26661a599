//! Shared fixtures: a test PKI, a server started on ephemeral ports with a
//! config written by the test, and HTTPS clients presenting certificates.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound::AppState;
use certbound::config::{Config, Source};
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
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn(subject);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
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

/// A running server and the files it was started with.
pub struct TestServer {
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub pki: Pki,
    pub state: Arc<AppState>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
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
    /// Starts a server whose config is `extra` (TOML: sections, clients)
    /// after the generated `[server]`, `[keys]`, `[revocation]` and `[mtls]`
    /// basics (keys before the first table in `extra` land in `[mtls]`).
    /// `trusted` is the `mtls.trusted_proxies` list.
    pub async fn start(extra: &str) -> Self {
        Self::start_with(extra, "[\"127.0.0.1/32\"]", Alg::ES256).await
    }

    pub async fn start_with(extra: &str, trusted: &str, alg: Alg) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("test CA");
        let server_id = pki.server();
        let path = |name: &str| dir.path().join(name);
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
max_body_bytes = 4096
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
        let config = Config::load(&Source::File(path("certbound.toml"))).expect("config loads");
        let keys = KeySet::load(&path("keys"), None).unwrap();
        let state = Arc::new(AppState::new(config, keys).expect("state builds"));
        let server = Server::bind(state.clone()).await.unwrap();
        let (https, http) = (server.https_addr().unwrap(), server.http_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            https,
            http,
            pki,
            state,
            _dir: dir,
            shutdown: Some(tx),
        }
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// An HTTPS client trusting the test CA, presenting `id` if given.
    pub fn client(&self, id: Option<&Identity>) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pem_der(&self.pki.ca_pem)))
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let tls = match id {
            Some(id) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(id.cert_der.clone())],
                    PrivateKeyDer::try_from(pem_der(&id.key_pem)).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap()
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
