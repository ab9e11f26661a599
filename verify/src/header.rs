//! Certificates forwarded by TLS-terminating proxies, in every format they
//! use:
//!
//! | format | sent by |
//! |---|---|
//! | PEM, with or without line breaks | WSO2 sample, HAProxy, custom |
//! | URL-encoded PEM | nginx `$ssl_client_escaped_cert`, AWS ALB `X-Amzn-Mtls-Clientcert` |
//! | base64 DER (optionally URL-encoded, chain comma-separated) | Traefik |
//! | `Cert="…"` element | Envoy `x-forwarded-client-cert` |
//! | `:base64:` byte sequence | RFC 9440 `Client-Cert` |
//!
//! The result is the leaf certificate's DER, checked to parse as X.509.
//! A header is only evidence when a trusted proxy set it: decide that
//! before decoding (RFC 8705 §2 leaves it to the deployment).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::percent_decode_str;

/// Why a header value is not a certificate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Nothing after trimming.
    #[error("empty value")]
    Empty,
    /// Percent-encoding does not decode to UTF-8.
    #[error("bad percent-encoding")]
    PercentEncoding,
    /// Envoy header without a `Cert` element.
    #[error("no Cert element in x-forwarded-client-cert")]
    NoEnvoyCert,
    /// PEM armour without a certificate block.
    #[error("malformed PEM")]
    Pem,
    /// The body is not base64.
    #[error("bad base64")]
    Base64,
    /// The bytes are not an X.509 certificate.
    #[error("not an X.509 certificate")]
    NotCertificate,
}

/// Largest header value we try to decode (a chain of a few large certs).
const MAX_LEN: usize = 64 * 1024;

/// Decodes a forwarded-certificate header value to the leaf's DER.
pub fn decode(value: &str) -> Result<Vec<u8>, HeaderError> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_LEN {
        return Err(HeaderError::Empty);
    }
    let der = if value.len() > 2 && value.starts_with(':') && value.ends_with(':') {
        // RFC 9440 §2.1: sf-binary, standard base64 between colons.
        b64(&value[1..value.len() - 1])?
    } else if let Some(cert) = envoy_cert(value)? {
        from_text(&cert)?
    } else {
        from_text(value)?
    };
    x509_parser::parse_x509_certificate(&der).map_err(|_| HeaderError::NotCertificate)?;
    Ok(der)
}

/// PEM, URL-encoded PEM, or bare base64 DER, optionally quoted.
fn from_text(value: &str) -> Result<Vec<u8>, HeaderError> {
    let value = value.trim().trim_matches('"').trim();
    let decoded: Cow<'_, str> = if value.contains('%') {
        percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| HeaderError::PercentEncoding)?
    } else {
        Cow::Borrowed(value)
    };
    let text = decoded.trim();
    if text.starts_with("-----BEGIN") {
        return pem_body(text);
    }
    // Traefik: base64 DER, a chain separated by commas, leaf first.
    let first = text.split(',').next().unwrap_or_default();
    b64(first)
}

/// The base64 body of the first `CERTIFICATE` block, line breaks or not.
fn pem_body(text: &str) -> Result<Vec<u8>, HeaderError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = text.find(BEGIN).ok_or(HeaderError::Pem)? + BEGIN.len();
    let len = text[start..].find(END).ok_or(HeaderError::Pem)?;
    b64(&text[start..start + len])
}

/// Standard or URL-safe base64, padding optional, whitespace ignored.
fn b64(text: &str) -> Result<Vec<u8>, HeaderError> {
    let stripped: String;
    let compact = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        stripped = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        stripped.as_str()
    } else {
        text
    };
    if compact.is_empty() {
        return Err(HeaderError::Base64);
    }
    if compact.contains(['-', '_']) {
        return URL_SAFE_NO_PAD
            .decode(compact.trim_end_matches('='))
            .map_err(|_| HeaderError::Base64);
    }
    let unpadded = compact.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| STANDARD.decode(compact))
        .map_err(|_| HeaderError::Base64)
}

/// Envoy `x-forwarded-client-cert`: `By=…;Hash=…;Cert="…";Subject="…"`,
/// elements comma-separated, one per hop. Only the last element counts:
/// the nearest proxy wrote it about the client it saw; earlier ones came
/// from further away (in `APPEND_FORWARD` mode, from the client itself).
/// Returns `None` when the value is not in this format.
fn envoy_cert(value: &str) -> Result<Option<String>, HeaderError> {
    let looks_envoy = value.split([';', ',']).any(|kv| {
        let key = kv.split('=').next().unwrap_or_default().trim();
        ["by", "hash", "cert", "chain", "subject", "uri", "dns"]
            .iter()
            .any(|k| key.eq_ignore_ascii_case(k))
            && kv.contains('=')
    });
    if !looks_envoy || value.starts_with("-----") {
        return Ok(None);
    }
    let nearest = split_unquoted(value, ',').pop().unwrap_or_default();
    split_unquoted(nearest, ';')
        .into_iter()
        .rev()
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("cert"))
        .map(|(_, val)| val.trim().trim_matches('"').replace("\\\"", "\""))
        .map(Some)
        .ok_or(HeaderError::NoEnvoyCert)
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Encodes DER in each supported header format, for tests and docs.
pub mod encode {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use sha2::{Digest, Sha256};

    /// PEM with line breaks every 64 characters.
    pub fn pem(der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// PEM on one line, as in the WSO2 sample.
    pub fn pem_single_line(der: &[u8]) -> String {
        format!(
            "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----",
            STANDARD.encode(der)
        )
    }

    /// nginx `$ssl_client_escaped_cert` / AWS ALB.
    pub fn url_encoded_pem(der: &[u8]) -> String {
        utf8_percent_encode(&pem(der), NON_ALPHANUMERIC).to_string()
    }

    /// Traefik: bare base64 DER.
    pub fn base64_der(der: &[u8]) -> String {
        STANDARD.encode(der)
    }

    /// Envoy `x-forwarded-client-cert`.
    pub fn envoy(der: &[u8]) -> String {
        format!(
            "By=spiffe://example/proxy;Hash={};Cert=\"{}\";Subject=\"CN=x\"",
            Sha256::digest(der)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            url_encoded_pem(der)
        )
    }

    /// RFC 9440 `Client-Cert`.
    pub fn rfc9440(der: &[u8]) -> String {
        format!(":{}:", STANDARD.encode(der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn every_format_decodes_to_the_same_der() {
        let der = sample_der();
        for value in [
            encode::pem(&der),
            encode::pem_single_line(&der),
            encode::url_encoded_pem(&der),
            encode::base64_der(&der),
            format!("{},{}", encode::base64_der(&der), encode::base64_der(&der)),
            encode::envoy(&der),
            format!("By=a;Cert=\"x\",{}", encode::envoy(&der)),
            encode::rfc9440(&der),
            format!("\"{}\"", encode::pem_single_line(&der)),
        ] {
            assert_eq!(decode(&value).as_deref(), Ok(der.as_slice()), "{value}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for value in [
            "",
            "   ",
            "::",
            "-----BEGIN CERTIFICATE-----",
            "By=x;Hash=y",
            "%ZZ",
            "aGVsbG8=",
        ] {
            assert!(decode(value).is_err(), "{value}");
        }
    }

    /// Envoy in `APPEND_FORWARD` mode: a client-sent element with a
    /// victim's certificate, then the proxy's own without `Cert`. Only the
    /// proxy's counts.
    #[test]
    fn only_the_nearest_envoy_element_counts() {
        let der = sample_der();
        let appended = format!("{},By=spiffe://proxy;Hash=00", encode::envoy(&der));
        assert_eq!(decode(&appended), Err(HeaderError::NoEnvoyCert));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = decode(&s);
        }

        #[test]
        fn never_panics_on_near_formats(prefix in prop::sample::select(vec!["-----BEGIN CERTIFICATE-----", ":", "Cert=\"", "%2D%2D", ""]), body in "[A-Za-z0-9+/=%\";,:\\- ]{0,200}") {
            let _ = decode(&format!("{prefix}{body}"));
        }
    }
}
