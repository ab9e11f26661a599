//! Subject DN comparison for `tls_client_auth_subject_dn` (RFC 8705 §2.1.2,
//! strings per RFC 4514).
//!
//! A DN is compared as a set of (attribute type OID, value) pairs: type names
//! and OIDs are interchangeable and case-insensitive, values compare
//! case-insensitively with insignificant whitespace removed (RFC 4518
//! `caseIgnoreMatch`), escapes are decoded, and the order of attributes does
//! not matter (RFC 4514 strings list RDNs in reverse ASN.1 order; tools
//! differ in which order they print).

use x509_parser::x509::X509Name;

/// A parsed, normalised DN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn(Vec<(String, String)>);

/// Why a DN string is malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnError {
    /// An attribute without `=`.
    #[error("attribute {0:?} has no '='")]
    NoEquals(String),
    /// An attribute type that is neither a known name nor a dotted OID.
    #[error("unknown attribute type {0:?}")]
    UnknownType(String),
    /// A bad escape sequence.
    #[error("bad escape in {0:?}")]
    Escape(String),
    /// No attributes at all.
    #[error("empty DN")]
    Empty,
}

/// Short names of RFC 4514 §3 plus the ones certificates commonly carry.
const NAMES: &[(&str, &str)] = &[
    ("cn", "2.5.4.3"),
    ("commonname", "2.5.4.3"),
    ("c", "2.5.4.6"),
    ("countryname", "2.5.4.6"),
    ("l", "2.5.4.7"),
    ("localityname", "2.5.4.7"),
    ("st", "2.5.4.8"),
    ("s", "2.5.4.8"),
    ("stateorprovincename", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("o", "2.5.4.10"),
    ("organizationname", "2.5.4.10"),
    ("ou", "2.5.4.11"),
    ("organizationalunitname", "2.5.4.11"),
    ("serialnumber", "2.5.4.5"),
    ("title", "2.5.4.12"),
    ("sn", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("givenname", "2.5.4.42"),
    ("dc", "0.9.2342.19200300.100.1.25"),
    ("uid", "0.9.2342.19200300.100.1.1"),
    ("emailaddress", "1.2.840.113549.1.9.1"),
    ("e", "1.2.840.113549.1.9.1"),
    ("organizationidentifier", "2.5.4.97"),
];

impl Dn {
    /// Parses an RFC 4514 string such as `CN=client, O=Example\, Inc.`.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        let mut attrs = Vec::new();
        for part in split_escaped(s, &[',', ';', '+']) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (typ, value) = part
                .split_once('=')
                .ok_or_else(|| DnError::NoEquals(part.to_string()))?;
            let oid = type_oid(typ.trim()).ok_or_else(|| DnError::UnknownType(typ.to_string()))?;
            let value = unescape(value.trim()).ok_or_else(|| DnError::Escape(part.to_string()))?;
            attrs.push((oid, normalise(&value)));
        }
        if attrs.is_empty() {
            return Err(DnError::Empty);
        }
        attrs.sort();
        Ok(Self(attrs))
    }

    /// The DN of a certificate subject.
    pub fn from_x509(name: &X509Name<'_>) -> Self {
        let mut attrs: Vec<(String, String)> = name
            .iter_attributes()
            .map(|attr| {
                let value = match attr.as_str() {
                    Ok(s) => normalise(s),
                    Err(_) => format!("#{}", hex::encode(attr.attr_value().data)),
                };
                (attr.attr_type().to_id_string(), value)
            })
            .collect();
        attrs.sort();
        Self(attrs)
    }
}

fn type_oid(typ: &str) -> Option<String> {
    let lower = typ.to_ascii_lowercase();
    let lower = lower.strip_prefix("oid.").unwrap_or(&lower);
    if let Some((_, oid)) = NAMES.iter().find(|(name, _)| *name == lower) {
        return Some((*oid).to_string());
    }
    let is_oid = !lower.is_empty()
        && lower.split('.').count() > 1
        && lower
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    is_oid.then(|| lower.to_string())
}

/// Case-folded, leading/trailing whitespace removed, inner runs collapsed.
fn normalise(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Splits on any of `seps` that is not escaped with `\` nor inside quotes.
fn split_escaped<'a>(s: &'a str, seps: &[char]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped, mut quoted) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && seps.contains(&c) {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Decodes RFC 4514 §2.4 escapes (`\,`, `\+`, `\\`, `\XX` hex) and quotes.
fn unescape(v: &str) -> Option<String> {
    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    let mut bytes = Vec::with_capacity(v.len());
    let mut chars = v.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        let first = chars.next()?;
        if first.is_ascii_hexdigit() && chars.peek().is_some_and(u8::is_ascii_hexdigit) {
            let second = chars.next()?;
            let hex = [first, second];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(first);
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_case_and_order_do_not_matter() {
        let a = Dn::parse("CN=demo-client,O=certbound dev").unwrap();
        for same in [
            "cn=demo-client, o=certbound dev",
            "O = certbound  dev ; CN = Demo-Client",
            "2.5.4.3=demo-client+2.5.4.10=certbound dev",
            "commonName=demo-client,organizationName=\"certbound dev\"",
            "CN=demo\\2Dclient,O=certbound\\20dev",
        ] {
            assert_eq!(Dn::parse(same).unwrap(), a, "{same}");
        }
        assert_ne!(Dn::parse("CN=demo-client").unwrap(), a);
        assert_ne!(Dn::parse("CN=demo-client,O=other").unwrap(), a);
    }

    #[test]
    fn escaped_separators_stay_in_the_value() {
        let dn = Dn::parse("CN=Example\\, Inc.,C=US").unwrap();
        assert!(dn.0.contains(&("2.5.4.3".into(), "example, inc.".into())));
    }

    #[test]
    fn malformed_dns_are_errors() {
        assert_eq!(Dn::parse(""), Err(DnError::Empty));
        assert!(matches!(Dn::parse("CN"), Err(DnError::NoEquals(_))));
        assert!(matches!(Dn::parse("XX=1"), Err(DnError::UnknownType(_))));
        assert!(matches!(Dn::parse("CN=a\\"), Err(DnError::Escape(_))));
    }

    #[test]
    fn certificate_subject_matches() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "demo-client");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "certbound dev");
        let cert = params.self_signed(&key).unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(
            Dn::from_x509(x509.subject()),
            Dn::parse("o=Certbound Dev, cn=demo-client").unwrap()
        );
    }
}
