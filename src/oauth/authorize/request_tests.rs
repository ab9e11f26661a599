//! Unit tests of `request.rs`: validation as a function of plain values.

use std::path::Path;

use super::*;
use crate::config::ClientConfig;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn clients() -> Clients {
    let web = ClientConfig {
        client_id: "web".into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        client_secret_sha256: Some("00".repeat(32)),
        grant_types: Some(vec!["authorization_code".into()]),
        scope: "openid read introspect".into(),
        redirect_uris: vec!["https://app/cb".into(), "https://app/other".into()],
        ..Default::default()
    };
    let machine = ClientConfig {
        client_id: "machine".into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        client_secret_sha256: Some("00".repeat(32)),
        redirect_uris: vec!["https://m/cb".into()],
        ..Default::default()
    };
    Clients::new(&[web, machine], None, Path::new("."), false).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in [
        ("client_id", "web"),
        ("redirect_uri", "https://app/cb"),
        ("response_type", "code"),
        ("scope", "openid read"),
        ("state", "s1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ] {
        map.insert(k.into(), v.into());
    }
    for (k, v) in pairs {
        if v.is_empty() {
            map.remove(*k);
        } else {
            map.insert((*k).into(), (*v).into());
        }
    }
    map
}

fn check(pairs: &[(&str, &str)]) -> Result<Valid, OAuthError> {
    let clients = clients();
    let p = params(pairs);
    let (client, uri, given) = trusted_redirect(&clients, &p).map_err(|e| match e {
        AuthorizeError::Shown(e) => e,
        AuthorizeError::Redirected { error, .. } => error,
    })?;
    validate(&p, &client, (&uri, given), "introspect", 600, 1000)
}

#[test]
fn untrusted_clients_and_redirect_uris_are_shown_not_redirected() {
    let clients = clients();
    for pairs in [
        &[("client_id", "")][..],
        &[("client_id", "nobody")][..],
        &[("client_id", "machine")][..], // no authorization_code grant
        &[("redirect_uri", "https://evil/cb")][..],
        &[("redirect_uri", "")][..], // two registered: must be sent
    ] {
        assert!(
            matches!(
                trusted_redirect(&clients, &params(pairs)),
                Err(AuthorizeError::Shown(_))
            ),
            "{pairs:?}"
        );
    }
}

#[test]
fn a_good_request_becomes_a_pending_request() {
    let valid = check(&[("nonce", "n1"), ("prompt", "consent"), ("max_age", "60")]).unwrap();
    let p = &valid.pending;
    assert_eq!(p.asked.client_id, "web");
    assert_eq!(p.asked.scope, "openid read");
    assert!(p.asked.redirect_given && p.prompt_consent);
    assert_eq!(p.asked.code_challenge.as_deref(), Some(CHALLENGE));
    assert_eq!(
        (p.state.as_deref(), p.asked.nonce.as_deref()),
        (Some("s1"), Some("n1"))
    );
    assert_eq!(p.expires, 1600, "form lifetime from now");
    assert_eq!(valid.prompt.max_age, Some(60));
}

#[test]
fn every_later_problem_has_its_oauth_error() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "invalid_request"),
        (&[("request", "eyJ")], "request_not_supported"),
        (&[("request_uri", "https://x")], "request_uri_not_supported"),
        (&[("response_mode", "fragment")], "invalid_request"),
        (&[("state", "tab\there")], "invalid_request"),
        (&[("prompt", "none login")], "invalid_request"),
        (&[("prompt", "sometimes")], "invalid_request"),
        (&[("max_age", "soon")], "invalid_request"),
        (&[("scope", "")], "invalid_scope"),
        (&[("scope", "openid admin")], "invalid_scope"),
        (&[("scope", "openid introspect")], "invalid_scope"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "short")], "invalid_request"),
    ];
    for (pairs, code) in cases {
        assert_eq!(
            check(pairs).err().map(|e| e.code()),
            Some(*code),
            "{pairs:?}"
        );
    }
    let long = "a".repeat(MAX_STATE_LEN + 1);
    assert!(check(&[("nonce", &long)]).is_err());
    assert!(returnable_state(&params(&[("state", &long)])).is_none());
    assert_eq!(returnable_state(&params(&[])), Some("s1"));
}

#[test]
fn sealed_field_names_stay_short_on_the_wire() {
    let pending = check(&[]).unwrap().pending;
    let json = serde_json::to_string(&pending).unwrap();
    for key in [
        "\"c\":", "\"r\":", "\"ri\":", "\"s\":", "\"cc\":", "\"st\":", "\"pc\":", "\"x\":",
        "\"e\":",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
    assert!(!json.contains("client_id"), "{json}");
    let back: Pending = serde_json::from_str(&json).unwrap();
    assert_eq!(back, pending);
}
