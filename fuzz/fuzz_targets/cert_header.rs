//! The proxy certificate-header decoder (every format of
//! `src/cert/header.rs`): never panics; whatever it accepts is DER that
//! wraps into a client certificate with a thumbprint.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(der) = certbound::cert::header::decode(value) {
        assert!(!der.is_empty());
        let cert = certbound::cert::ClientCertificate::from_chain(vec![der.into()]);
        assert!(cert.is_some_and(|c| c.thumbprint.len() == 43));
    }
});
