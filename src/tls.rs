//! The server TLS configuration. The listener asks for a client certificate
//! but does not require one, and accepts any certificate at the handshake,
//! self-signed included (RFC 8705 §2.2): which certificate authenticates
//! which client is decided at the endpoint. The handshake signature is still
//! verified, so the peer proves it holds the certificate's private key.
//! The verifier is `certbound-verify`'s, shared with resource servers.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// Builds the HTTPS listener's configuration from PEM files.
pub fn server_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = crate::cert::read_pem_certificates(cert_path)
        .map_err(|e| format!("server.tls_certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("server.tls_private_key {}: {e}", key_path.display()))?;
    certbound_verify::tls::server_config(certs, key)
        .map_err(|e| format!("server certificate and key: {e}"))
}
