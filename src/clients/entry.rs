//! Reading one `[[clients]]` entry: its redirect URIs, its
//! `tls_client_auth` subject (RFC 8705 §2.1.2) and its pinned
//! certificates (§2.2).

use std::net::IpAddr;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::cert::dn::Dn;
use crate::cert::matching::Subject;
use crate::cert::thumbprint;
use crate::config::ClientConfig;

/// RFC 6749 §3.1.2: an absolute URI without a fragment; RFC 8252 §7:
/// private-use schemes are allowed for native apps.
pub(super) fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("redirect_uri {uri:?} is not absolute: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!("redirect_uri {uri:?} has a fragment"));
    }
    if parsed.cannot_be_a_base() && !uri.contains(':') {
        return Err(format!("redirect_uri {uri:?} is not absolute"));
    }
    Ok(())
}

pub(super) fn subjects(c: &ClientConfig) -> Result<Vec<Subject>, String> {
    let mut out = Vec::new();
    if let Some(dn) = &c.tls_client_auth_subject_dn {
        out.push(Subject::Dn(
            Dn::parse(dn).map_err(|e| format!("tls_client_auth_subject_dn: {e}"))?,
        ));
    }
    if let Some(v) = &c.tls_client_auth_san_dns {
        out.push(Subject::SanDns(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_uri {
        out.push(Subject::SanUri(v.clone()));
    }
    if let Some(v) = &c.tls_client_auth_san_ip {
        let ip: IpAddr = v
            .parse()
            .map_err(|_| format!("tls_client_auth_san_ip {v:?} is not an IP address"))?;
        out.push(Subject::SanIp(ip));
    }
    if let Some(v) = &c.tls_client_auth_san_email {
        out.push(Subject::SanEmail(v.clone()));
    }
    Ok(out)
}

/// Thumbprints of `certificates` (PEM files or inline PEM) and of the first
/// `x5c` entry of each key in `jwks`.
pub(super) fn pinned_thumbprints(c: &ClientConfig, base_dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in &c.certificates {
        let pem = if entry.trim_start().starts_with("-----BEGIN") {
            entry.clone()
        } else {
            let path = base_dir.join(entry);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read certificate {}: {e}", path.display()))?
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("certificate {entry:?}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("certificate {entry:?} holds no PEM certificate"));
        }
        out.extend(certs.iter().map(|der| thumbprint(der)));
    }
    if let Some(jwks) = &c.jwks {
        let keys = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("jwks must be an object with a \"keys\" array")?;
        for key in keys {
            let x5c = key
                .get("x5c")
                .and_then(|x| x.as_array())
                .and_then(|a| a.first())
                .and_then(|v| v.as_str())
                .ok_or("every jwks key needs an x5c certificate")?;
            let der = STANDARD
                .decode(x5c)
                .map_err(|_| "jwks x5c is not base64".to_string())?;
            x509_parser::parse_x509_certificate(&der)
                .map_err(|_| "jwks x5c is not an X.509 certificate".to_string())?;
            out.push(thumbprint(&der));
        }
    }
    Ok(out)
}
