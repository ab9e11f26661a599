//! Subject DN comparison for `tls_client_auth_subject_dn` (RFC 8705 §2.1.2,
//! strings per RFC 4514).
//!
//! A DN is a sequence of RDNs, each a set of (attribute type, value) pairs,
//! and it is compared as such (X.501 distinguishedNameMatch):
//! - RDNs in order. An RFC 4514 string lists them last-to-first (`CN=…`
//!   first); the whole sequence reversed (`C=…` first, as some tools print
//!   it) is accepted too, but no other order.
//! - A multi-valued RDN (`CN=a+O=b`) is one RDN: it never equals two RDNs
//!   (`CN=a,O=b`). Inside it, the order of its attributes does not matter.
//! - Type names and dotted OIDs are interchangeable and case-insensitive.
//! - Values: escapes decoded, leading and trailing spaces dropped, inner
//!   runs of spaces folded to one (RFC 4518 §2.6.1 insignificant space),
//!   then ASCII letters compared case-insensitively. Other characters
//!   compare exactly: no Unicode case folding, so `K` (U+212A KELVIN SIGN)
//!   is not `k`.

use x509_parser::x509::X509Name;

/// One RDN: its attributes as (OID, normalised value), sorted.
type Rdn = Vec<(String, String)>;

/// A parsed, normalised DN, RDNs in ASN.1 order (most significant first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn(Vec<Rdn>);

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
        let mut rdns = Vec::new();
        for rdn in split_escaped(s, &[',', ';']) {
            if rdn.trim().is_empty() {
                continue;
            }
            let mut attrs = Vec::new();
            for part in split_escaped(rdn, &['+']) {
                let part = part.trim();
                let (typ, value) = part
                    .split_once('=')
                    .ok_or_else(|| DnError::NoEquals(part.to_string()))?;
                let oid =
                    type_oid(typ.trim()).ok_or_else(|| DnError::UnknownType(typ.to_string()))?;
                let value =
                    unescape(value.trim()).ok_or_else(|| DnError::Escape(part.to_string()))?;
                attrs.push((oid, normalise(&value)));
            }
            attrs.sort();
            rdns.push(attrs);
        }
        if rdns.is_empty() {
            return Err(DnError::Empty);
        }
        // RFC 4514 §2.1: the string lists the last RDN first.
        rdns.reverse();
        Ok(Self(rdns))
    }

    /// The DN of a certificate subject.
    pub fn from_x509(name: &X509Name<'_>) -> Self {
        Self(
            name.iter_rdn()
                .map(|rdn| {
                    let mut attrs: Rdn = rdn
                        .iter()
                        .map(|attr| {
                            let value = match attr.as_str() {
                                Ok(s) => normalise(s),
                                Err(_) => format!("#{}", hex::encode(attr.attr_value().data)),
                            };
                            (attr.attr_type().to_id_string(), value)
                        })
                        .collect();
                    attrs.sort();
                    attrs
                })
                .collect(),
        )
    }

    /// Whether a certificate's DN `cert` is this registered DN, in RFC
    /// 4514 order or with the whole sequence reversed.
    pub fn matches(&self, cert: &Dn) -> bool {
        self.0 == cert.0 || (self.0.len() == cert.0.len() && self.0.iter().rev().eq(cert.0.iter()))
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

/// RFC 4518 insignificant space handling (spaces only), then ASCII case
/// folding; other characters are kept as they are.
fn normalise(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.make_ascii_lowercase();
    out
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

    fn cert_dn(attrs: &[(rcgen::DnType, &str)]) -> Dn {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in attrs {
            params.distinguished_name.push(t.clone(), *v);
        }
        let cert = params.self_signed(&key).unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        Dn::from_x509(x509.subject())
    }

    fn demo() -> Dn {
        cert_dn(&[
            (rcgen::DnType::OrganizationName, "certbound dev"),
            (rcgen::DnType::CommonName, "demo-client"),
        ])
    }

    #[test]
    fn spacing_case_escapes_and_type_names_do_not_matter() {
        let cert = demo();
        for same in [
            "CN=demo-client,O=certbound dev",
            "cn=demo-client, o=certbound dev",
            "CN = Demo-Client ; O = certbound  dev",
            "2.5.4.3=demo-client,2.5.4.10=certbound dev",
            "commonName=demo-client,organizationName=\"certbound dev\"",
            "CN=demo\\2Dclient,O=certbound\\20dev",
            // The whole sequence reversed, as `openssl -nameopt` prints it.
            "O=certbound dev,CN=demo-client",
        ] {
            assert!(Dn::parse(same).unwrap().matches(&cert), "{same}");
        }
        for other in [
            "CN=demo-client",
            "CN=demo-client,O=other",
            "CN=demo-client,O=certbound dev,C=US",
        ] {
            assert!(!Dn::parse(other).unwrap().matches(&cert), "{other}");
        }
    }

    #[test]
    fn unicode_case_folding_never_matches() {
        // Finding 6: U+212A KELVIN SIGN lower-cases to "k" in Unicode.
        let cert = cert_dn(&[(rcgen::DnType::CommonName, "kube-admin")]);
        assert!(Dn::parse("CN=Kube-admin").unwrap().matches(&cert));
        assert!(!Dn::parse("CN=\u{212A}ube-admin").unwrap().matches(&cert));
        let kelvin = cert_dn(&[(rcgen::DnType::CommonName, "\u{212A}ube-admin")]);
        assert!(!Dn::parse("CN=kube-admin").unwrap().matches(&kelvin));
        assert!(Dn::parse("CN=\u{212A}ube-admin").unwrap().matches(&kelvin));
        // Non-ASCII letters compare exactly.
        let umlaut = cert_dn(&[(rcgen::DnType::CommonName, "Ärger")]);
        assert!(!Dn::parse("CN=ärger").unwrap().matches(&umlaut));
    }

    #[test]
    fn rdn_order_and_multi_valued_rdns_are_kept() {
        let three = cert_dn(&[
            (rcgen::DnType::CountryName, "US"),
            (rcgen::DnType::OrganizationName, "o"),
            (rcgen::DnType::CommonName, "c"),
        ]);
        assert!(Dn::parse("CN=c,O=o,C=US").unwrap().matches(&three));
        assert!(Dn::parse("C=US,O=o,CN=c").unwrap().matches(&three));
        // Any other permutation is another DN.
        assert!(!Dn::parse("O=o,CN=c,C=US").unwrap().matches(&three));
        assert!(!Dn::parse("CN=c,C=US,O=o").unwrap().matches(&three));
        // One multi-valued RDN is not two RDNs.
        assert!(!Dn::parse("CN=c+O=o,C=US").unwrap().matches(&three));
        let parsed = Dn::parse("CN=c+O=o,C=US").unwrap();
        assert_eq!(parsed, Dn::parse("O=o+CN=c,C=US").unwrap());
        assert_eq!(parsed.0.len(), 2);
    }

    #[test]
    fn escaped_separators_stay_in_the_value() {
        let dn = Dn::parse("CN=Example\\, Inc.,C=US").unwrap();
        assert!(dn.0.contains(&vec![("2.5.4.3".into(), "example, inc.".into())]));
        let plus = Dn::parse("CN=a\\+b").unwrap();
        assert_eq!(
            plus.0,
            vec![vec![("2.5.4.3".to_string(), "a+b".to_string())]]
        );
    }

    #[test]
    fn malformed_dns_are_errors() {
        assert_eq!(Dn::parse(""), Err(DnError::Empty));
        assert!(matches!(Dn::parse("CN"), Err(DnError::NoEquals(_))));
        assert!(matches!(Dn::parse("XX=1"), Err(DnError::UnknownType(_))));
        assert!(matches!(Dn::parse("CN=a\\"), Err(DnError::Escape(_))));
        assert!(matches!(Dn::parse("CN=a+"), Err(DnError::NoEquals(_))));
    }
}
