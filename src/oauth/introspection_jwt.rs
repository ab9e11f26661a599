//! JWT introspection answers (RFC 9701): a caller that asks with `Accept:
//! application/token-introspection+jwt` gets the RFC 7662 object signed by
//! the server, `typ` `token-introspection+jwt`, with `iss`, `aud` = the
//! caller's client id, `iat` and the object in `token_introspection`.

use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use serde::Serialize;

use super::introspect::Introspection;
use crate::error::OAuthError;
use crate::settings::Settings;

/// The media type of a JWT introspection answer (RFC 9701 §4).
pub const MEDIA_TYPE: &str = "application/token-introspection+jwt";
/// Its JOSE `typ` (RFC 9701 §5).
pub const TYP: &str = "token-introspection+jwt";

/// What an `Accept` header (all its lines, joined) takes: the JWT form
/// (any media range naming it with q > 0), and whether JSON would do too.
/// No header: JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accept {
    /// The JWT form is asked for.
    pub jwt: bool,
    /// `application/json` (or a wildcard covering it) is acceptable.
    pub json: bool,
}

impl Accept {
    /// Parses `Accept`; `None` is no header.
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self {
                jwt: false,
                json: true,
            };
        };
        let mut out = Self::default();
        for range in value.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let wanted = parts.all(|p| {
                let Some((name, q)) = p.split_once('=') else {
                    return true;
                };
                !name.trim().eq_ignore_ascii_case("q")
                    || q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
            });
            if !wanted {
                continue;
            }
            match media.as_str() {
                MEDIA_TYPE => out.jwt = true,
                "application/json" | "application/*" | "*/*" => out.json = true,
                _ => {}
            }
        }
        out
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    token_introspection: serde_json::Value,
}

/// The answer as a signed JWT for the caller `audience` (its client id).
pub fn sign(
    settings: &Settings,
    audience: &str,
    answer: &Introspection,
    now: u64,
) -> Result<String, OAuthError> {
    let claims = Claims {
        iss: &settings.tokens.issuer,
        aud: audience,
        iat: now,
        // The exact object the JSON answer carries.
        token_introspection: serde_json::to_value(answer).unwrap_or_default(),
    };
    crate::token::sign(&settings.keys, TYP, &claims, now)
}

/// An introspection answer (RFC 7662 §2.2), as JSON or, when asked for,
/// as a JWT (RFC 9701).
#[derive(Debug)]
pub enum IntrospectionResponse {
    /// `application/json`: the serialised [`Introspection`].
    Json(bytes::Bytes),
    /// `application/token-introspection+jwt`.
    Jwt(String),
}

impl IntoResponse for IntrospectionResponse {
    fn into_response(self) -> Response {
        let (content_type, body) = match self {
            Self::Json(answer) => ("application/json", answer),
            Self::Jwt(jwt) => (MEDIA_TYPE, jwt.into()),
        };
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .body(body)
    }
}

impl ApiResponse for IntrospectionResponse {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The token's state; `{\"active\": false}` for any invalid token. With `Accept: application/token-introspection+jwt`, the same object signed as a JWT (RFC 9701).",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: "application/json",
                        schema: Introspection::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: MEDIA_TYPE,
                        schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
                    },
                ],
                headers: vec![MetaHeader {
                    name: "Cache-Control".into(),
                    description: None,
                    required: true,
                    deprecated: false,
                    schema: String::schema_ref(),
                }],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Introspection::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accept_naming_the_jwt_type_asks_for_it() {
        let jwt = |v| Accept::parse(v).jwt;
        assert!(!jwt(None) && Accept::parse(None).json);
        assert!(!jwt(Some("application/json")));
        assert!(!jwt(Some("*/*")));
        assert!(jwt(Some(MEDIA_TYPE)));
        let both = Accept::parse(Some(
            "application/json;q=0.5, Application/Token-Introspection+JWT",
        ));
        assert!(both.jwt && both.json);
        assert!(!jwt(Some("application/token-introspection+jwt;q=0")));
        assert!(!jwt(Some("application/token-introspection+jwt;Q=0")));
        assert!(!jwt(Some("application/token-introspection+jwt;q=NaN")));
        assert!(!Accept::parse(Some(MEDIA_TYPE)).json);
    }
}
