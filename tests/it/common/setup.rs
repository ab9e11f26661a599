//! The files a test server starts with.

use certbound::keys::Alg;

use super::{HEADER, Pki};

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
