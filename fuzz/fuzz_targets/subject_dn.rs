//! Subject-DN parsing (RFC 4514 strings) and matching against the subject
//! of an X.509 certificate: input is `dn string 0x00 certificate DER`.
//! Never panics; matching is symmetric in the reversal it allows, and a
//! parsed DN always matches itself.
#![no_main]

use certbound::cert::dn::Dn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (text, der) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let parsed = std::str::from_utf8(text)
        .ok()
        .and_then(|s| Dn::parse(s).ok());
    if let Some(dn) = &parsed {
        assert!(dn.matches(dn));
    }
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        let subject = Dn::from_x509(cert.subject());
        if let Some(dn) = &parsed {
            let _ = dn.matches(&subject);
        }
    }
});
