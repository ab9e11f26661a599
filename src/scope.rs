//! Scope parameter (RFC 6749 §3.3): a space-delimited list of
//! `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`, at most
//! [`MAX_TOKENS`] tokens and [`MAX_LEN`] characters.

use crate::error::OAuthError;

/// Most scope tokens accepted in one parameter.
pub const MAX_TOKENS: usize = 64;
/// Longest scope parameter accepted.
pub const MAX_LEN: usize = 2048;

/// Parses a scope string into its tokens, in order, without duplicates
/// (at most [`MAX_TOKENS`] distinct ones, so the de-duplication scan is
/// bounded). Any character outside the RFC 6749 §3.3 grammar, an empty
/// token between two spaces, more than [`MAX_TOKENS`] tokens or more than
/// [`MAX_LEN`] characters is `invalid_scope`.
pub fn parse(s: &str) -> Result<Vec<&str>, OAuthError> {
    let mut out: Vec<&str> = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    if s.len() > MAX_LEN {
        return Err(OAuthError::InvalidScope(
            format!("scope is longer than {MAX_LEN} characters").into(),
        ));
    }
    for token in s.split(' ') {
        if token.is_empty() {
            return Err(OAuthError::InvalidScope("scope has an empty token".into()));
        }
        if !token.bytes().all(is_scope_char) {
            return Err(OAuthError::InvalidScope(
                "scope has a character outside RFC 6749 §3.3".into(),
            ));
        }
        if !out.contains(&token) {
            if out.len() == MAX_TOKENS {
                return Err(OAuthError::InvalidScope(
                    format!("scope has more than {MAX_TOKENS} tokens").into(),
                ));
            }
            out.push(token);
        }
    }
    Ok(out)
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// OpenID Connect scopes (OIDC Core §5.4, §11): they ask for a signed-in
/// user's claims, so they are granted only with a user.
pub const USER_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The scope to grant: every requested token must be allowed; no request
/// means everything allowed (RFC 6749 §3.3 permits a documented default).
pub fn grant(requested: Option<&str>, allowed: &[String]) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.join(" "));
    };
    let tokens = parse(requested)?;
    if let Some(bad) = tokens.iter().find(|t| !allowed.iter().any(|a| a == *t)) {
        return Err(OAuthError::InvalidScope(
            format!("scope {bad:?} is not allowed for this client").into(),
        ));
    }
    Ok(tokens.join(" "))
}

/// `scope` without the token `drop`.
pub fn without<'a>(scope: &'a str, drop: &str) -> std::borrow::Cow<'a, str> {
    if !contains(scope, drop) {
        return std::borrow::Cow::Borrowed(scope);
    }
    std::borrow::Cow::Owned(
        scope
            .split(' ')
            .filter(|t| *t != drop)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Whether a granted scope string contains `wanted`.
pub fn contains(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|t| t == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allowed() -> Vec<String> {
        vec!["read".into(), "write".into()]
    }

    #[test]
    fn grants() {
        assert_eq!(grant(None, &allowed()).unwrap(), "read write");
        assert_eq!(
            grant(Some("write read write"), &allowed()).unwrap(),
            "write read"
        );
        assert!(matches!(
            grant(Some("admin"), &allowed()),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(matches!(
            grant(Some("read  write"), &allowed()),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(matches!(
            grant(Some("re\"ad"), &allowed()),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(contains("a b c", "b"));
        assert!(!contains("a bc", "b"));
        assert_eq!(without("a introspect b", "introspect"), "a b");
        assert_eq!(without("introspect", "introspect"), "");
        assert!(matches!(
            without("a b", "x"),
            std::borrow::Cow::Borrowed("a b")
        ));
    }

    #[test]
    fn counts_and_lengths_are_capped() {
        let many: Vec<String> = (0..=MAX_TOKENS).map(|i| format!("s{i}")).collect();
        assert!(parse(&many[..MAX_TOKENS].join(" ")).is_ok());
        assert!(matches!(
            parse(&many.join(" ")),
            Err(OAuthError::InvalidScope(_))
        ));
        // Repeats of allowed tokens do not count twice.
        assert_eq!(parse(&["a"; 500].join(" ")).unwrap(), vec!["a"]);
        assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn the_reported_12000_token_scope_is_refused_on_length() {
        let s: String = (0..12_000).map(|i| format!("t{} ", i % 40)).collect();
        assert!(matches!(
            parse(s.trim_end()),
            Err(OAuthError::InvalidScope(_))
        ));
    }

    proptest! {
        #[test]
        fn valid_scopes_round_trip(tokens in prop::collection::vec("[!#-\\[\\]-~]{1,12}", 0..8)) {
            let s = tokens.join(" ");
            let parsed = parse(&s).unwrap();
            let mut dedup: Vec<&str> = Vec::new();
            for t in &tokens { if !dedup.contains(&t.as_str()) { dedup.push(t); } }
            prop_assert_eq!(parsed, dedup);
        }

        #[test]
        fn arbitrary_input_never_panics_and_outputs_valid_tokens(s in "\\PC{0,64}") {
            if let Ok(tokens) = parse(&s) {
                for t in tokens {
                    prop_assert!(!t.is_empty() && t.bytes().all(is_scope_char));
                }
            }
        }
    }
}
