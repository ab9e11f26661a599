//! A server running in the test process, and HTTPS clients for any
//! server.

use std::net::SocketAddr;
use std::sync::Arc;

use certbound::AppState;
use certbound::config::Source;
use certbound::keys::Alg;
use certbound::server::Server;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

use super::{Identity, Pki, Setup, pem_der, serde_urlencoded};

/// Where a running server listens, and HTTPS clients for it.
#[derive(Clone)]
pub struct Api {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub(super) ca_pem: String,
    /// Prefix of every URL (`/t/{domain}` for a tenant; "" by default).
    pub(super) base: String,
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
            base: String::new(),
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
    /// A server (or a proxy) at `https` whose certificate `ca_pem` issued.
    pub fn at(https: SocketAddr, ca_pem: &str) -> Self {
        Self {
            https,
            http: None,
            ca_pem: ca_pem.to_string(),
            base: String::new(),
        }
    }

    /// GETs `path` over HTTPS and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client(None)
            .get(self.https_url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The same server with every URL under `prefix` (a tenant's
    /// `/t/{domain}`).
    pub fn under(&self, prefix: &str) -> Api {
        Api {
            base: prefix.to_string(),
            ..self.clone()
        }
    }

    /// The prefix of every URL ("" or `/t/{domain}`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}{path}", self.https, self.base)
    }

    pub fn http_url(&self, path: &str) -> String {
        let http = self.http.expect("an http listener");
        format!("http://{http}{}{path}", self.base)
    }

    /// The server's JWKS document, as a resource server fetches it.
    pub async fn jwks_bytes(&self) -> Vec<u8> {
        self.client(None)
            .get(self.https_url("/oauth2/jwks"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
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
