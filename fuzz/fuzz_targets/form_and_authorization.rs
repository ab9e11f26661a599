//! The form-body parser (RFC 6749 §3.1: no repeated parameter, empty values
//! dropped) and the `Authorization` header parser (Basic, Bearer).
#![no_main]

use certbound::oauth::extract::{Authorization, parse_authorization_value};
use certbound::oauth::form::parse_form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = parse_form(data) {
        assert!(
            map.values()
                .all(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        );
    }
    match parse_authorization_value(data) {
        Ok(Authorization::Basic(id, _)) => assert!(!id.is_empty()),
        Ok(Authorization::Bearer(token)) => assert!(!token.is_empty()),
        Err(e) => assert_eq!(e.code(), "invalid_client"),
    }
});
