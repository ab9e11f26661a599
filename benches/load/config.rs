//! The load benchmark's server configuration.

use std::path::Path;

/// The configuration: both listeners, the certificate header trusted from
/// loopback, a self-signed client (`pinned`), a CA-issued one (`pki`), the
/// introspecting `rs`, a user caller, and one tenant.
pub(crate) fn bench(keys_dir: &Path, run: &Path, https: u16, http: u16) -> String {
    format!(
        r#"
issuer = "https://127.0.0.1:{https}"
[server]
https = "127.0.0.1:{https}"
http = "127.0.0.1:{http}"
tls_certificate = "{k}/server.crt"
tls_private_key = "{k}/server.key"
[keys]
dir = "{k}"
[revocation]
file = "{r}/data/revocations.log"
[mtls]
client_certificate_header = "x-client-cert"
trusted_proxies = ["127.0.0.1/32"]
trust_anchors = "{k}/ca.crt"
{pinned}{PKI_CLIENT}{RS_CLIENT}[[users]]
username = "bench"
password_hash = "{hash}"
permissions = ["introspect"]
[[tenants]]
domain = "acme.com"
[[tenants.clients]]
client_id = "pinned"
token_endpoint_auth_method = "self_signed_tls_client_auth"
certificates = ["{k}/client.crt"]
scope = "read write"
[[tenants.clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
introspection = true
"#,
        hash = certbound::users::hash_password("bench").unwrap(),
        pinned = super::driver::pinned_client(keys_dir),
        PKI_CLIENT = super::driver::PKI_CLIENT,
        RS_CLIENT = super::driver::RS_CLIENT,
        k = keys_dir.display(),
        r = run.display()
    )
}
