//! RFC 6750: the token from `Authorization: Bearer …` (§2.1), and the
//! answers to a request that cannot go on (§3): 401 with
//! `WWW-Authenticate: Bearer` (no error code when no token came,
//! `invalid_token` for a bad, expired or wrongly bound one), 403
//! `insufficient_scope` with the scopes needed, 400 `invalid_request` for
//! a malformed header. Which check failed is for the log
//! ([`Rejection::reason`]); the wire carries only the error code.

use crate::access::Failure;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer token came (no `Authorization` header, or another
    /// scheme): 401, and no error code (RFC 6750 §3.1).
    NoToken,
    /// The `Authorization` header is malformed, or repeated: 400
    /// `invalid_request`.
    Malformed(&'static str),
    /// The client certificate a trusted proxy forwarded cannot be read:
    /// 400 `invalid_request`.
    BadCertificateHeader,
    /// The token failed a check: 401 `invalid_token`.
    InvalidToken(Failure),
    /// The token lacks a scope the route requires (all of them,
    /// space-separated): 403 `insufficient_scope`.
    InsufficientScope(String),
    /// The token could not be checked: the authorization server's keys
    /// or introspection cannot be reached (503).
    Unavailable(Failure),
}

impl From<Failure> for Rejection {
    fn from(failure: Failure) -> Self {
        if failure.is_unavailable() {
            Self::Unavailable(failure)
        } else {
            Self::InvalidToken(failure)
        }
    }
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::BadCertificateHeader => 400,
            Self::NoToken | Self::InvalidToken(_) => 401,
            Self::InsufficientScope(_) => 403,
            Self::Unavailable(_) => 503,
        }
    }

    /// The RFC 6750 §3 error code, if any.
    pub fn error(&self) -> Option<&'static str> {
        match self {
            Self::NoToken | Self::Unavailable(_) => None,
            Self::Malformed(_) | Self::BadCertificateHeader => Some("invalid_request"),
            Self::InvalidToken(_) => Some("invalid_token"),
            Self::InsufficientScope(_) => Some("insufficient_scope"),
        }
    }

    /// What the client is told, in words that name no check.
    pub fn description(&self) -> &'static str {
        match self {
            Self::NoToken => "a bearer access token is required",
            Self::Malformed(_) => "the Authorization header is malformed",
            Self::BadCertificateHeader => "the forwarded client certificate cannot be read",
            Self::InvalidToken(_) => {
                "the access token is not valid here, or not presented with its client certificate"
            }
            Self::InsufficientScope(_) => "the access token lacks a scope this resource requires",
            Self::Unavailable(_) => "the access token cannot be checked now; try again later",
        }
    }

    /// Which check failed, for the log (never sent).
    pub fn reason(&self) -> String {
        match self {
            Self::NoToken => "no bearer token".into(),
            Self::Malformed(why) => (*why).into(),
            Self::BadCertificateHeader => {
                "unreadable certificate header from a trusted proxy".into()
            }
            Self::InvalidToken(f) | Self::Unavailable(f) => f.to_string(),
            Self::InsufficientScope(needed) => format!("lacks a scope of {needed}"),
        }
    }

    /// The `WWW-Authenticate` header (RFC 6750 §3), for 401 and 403; 400
    /// carries it too.
    pub fn www_authenticate(&self, realm: &str) -> Option<String> {
        if let Self::Unavailable(_) = self {
            return None;
        }
        let mut value = format!("Bearer realm=\"{}\"", quoted(realm));
        if let Some(error) = self.error() {
            value.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                self.description()
            ));
        }
        if let Self::InsufficientScope(scope) = self {
            value.push_str(&format!(", scope=\"{}\"", quoted(scope)));
        }
        Some(value)
    }

    /// The JSON body: `error` (when there is one) and
    /// `error_description`.
    pub fn body(&self) -> String {
        let mut body = serde_json::Map::new();
        if let Some(error) = self.error() {
            body.insert("error".into(), error.into());
        }
        body.insert("error_description".into(), self.description().into());
        if let Self::InsufficientScope(scope) = self {
            body.insert("scope".into(), scope.as_str().into());
        }
        serde_json::Value::Object(body).to_string()
    }

    /// `Retry-After` seconds, for 503.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Self::Unavailable(_)).then_some(5)
    }
}

/// A quoted-string's content (RFC 9110 §5.6.4): only characters that need
/// no escaping are kept (scope tokens and realms never need more).
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

/// The bearer token of a request's `Authorization` header values (there
/// must be at most one), RFC 6750 §2.1: `Bearer` (any case), one or more
/// spaces, then a b64token.
pub fn token<'a>(mut authorization: impl Iterator<Item = &'a [u8]>) -> Result<&'a str, Rejection> {
    let Some(value) = authorization.next() else {
        return Err(Rejection::NoToken);
    };
    if authorization.next().is_some() {
        return Err(Rejection::Malformed("Authorization header repeated"));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| Rejection::Malformed("Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::NoToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Rejection::Malformed("Bearer without a token"));
    }
    if !is_b64token(token) {
        return Err(Rejection::Malformed("Bearer token is not a b64token"));
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The scopes of `required` that `granted` (space-separated) lacks,
/// space-separated; `None` when it has them all.
pub fn missing_scopes(granted: &str, required: &[String]) -> Option<String> {
    let missing: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|want| !granted.split(' ').any(|g| g == *want))
        .collect();
    (!missing.is_empty()).then(|| missing.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[&str]) -> Result<String, Rejection> {
        token(values.iter().map(|v| v.as_bytes())).map(str::to_owned)
    }

    #[test]
    fn the_authorization_header() {
        assert_eq!(of(&["Bearer abc.def-_~+/=="]).unwrap(), "abc.def-_~+/==");
        assert_eq!(of(&["bEaReR   abc"]).unwrap(), "abc");
        assert_eq!(of(&[]), Err(Rejection::NoToken));
        assert_eq!(of(&["Basic dXNlcjpwdw=="]), Err(Rejection::NoToken));
        assert_eq!(of(&["Bearer"]).unwrap_err().status(), 400);
        assert_eq!(of(&["Bearer "]).unwrap_err().status(), 400);
        assert_eq!(of(&["Bearer a b"]).unwrap_err().status(), 400);
        assert_eq!(of(&["Bearer ==="]).unwrap_err().status(), 400);
        assert_eq!(of(&["Bearer a", "Bearer b"]).unwrap_err().status(), 400);
        assert_eq!(of(&["Bearer a\"b"]).unwrap_err().status(), 400);
        assert_eq!(
            token([b"Bearer \xff".as_slice()].into_iter())
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn answers() {
        let no = Rejection::NoToken;
        assert_eq!(no.status(), 401);
        assert_eq!(no.www_authenticate("api").unwrap(), "Bearer realm=\"api\"");
        assert!(!no.body().contains("\"error\""));
        let bad = Rejection::from(Failure::Expired);
        assert_eq!(bad.status(), 401);
        let header = bad.www_authenticate("api").unwrap();
        assert!(header.starts_with("Bearer realm=\"api\", error=\"invalid_token\""));
        assert!(!header.contains("expired") && !bad.body().contains("expired"));
        assert_eq!(bad.reason(), "expired");
        let scope = Rejection::InsufficientScope("orders:write admin".into());
        assert_eq!(scope.status(), 403);
        assert!(
            scope
                .www_authenticate("a\"b\\c")
                .unwrap()
                .contains("realm=\"abc\", error=\"insufficient_scope\"")
        );
        assert!(
            scope
                .www_authenticate("x")
                .unwrap()
                .ends_with("scope=\"orders:write admin\"")
        );
        let down = Rejection::from(Failure::Keys(crate::remote::KeysError::Unavailable {
            from: "https://as".into(),
            reason: "refused".into(),
        }));
        assert_eq!((down.status(), down.retry_after()), (503, Some(5)));
        assert!(!down.body().contains("refused"));
    }

    #[test]
    fn scopes_needed() {
        let need = |g: &str, r: &[&str]| {
            missing_scopes(g, &r.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(need("a b c", &["a", "c"]), None);
        assert_eq!(need("a b", &["a", "d", "e"]).as_deref(), Some("d e"));
        assert_eq!(need("", &["a"]).as_deref(), Some("a"));
        assert_eq!(need("ab", &["a"]).as_deref(), Some("a"));
        assert_eq!(need("anything", &[]), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = token([bytes.as_slice()].into_iter());
        }

        #[test]
        fn a_token_is_returned_as_sent(t in "[A-Za-z0-9._~+/-]{1,100}={0,2}") {
            let header = format!("Bearer {t}");
            prop_assert_eq!(of(&[&header]).unwrap(), t);
        }
    }
}
