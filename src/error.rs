//! OAuth 2.0 error responses (RFC 6749 §5.2), mapped to HTTP in one place.
//!
//! Every endpoint returns [`OAuthError`] for anything that goes wrong; this
//! module alone decides the status code, the `WWW-Authenticate` header and the
//! JSON body. Internal failures are logged here and never echoed to the client.

use std::borrow::Cow;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};

/// Description text carried by an error: usually a static sentence.
pub type Description = Cow<'static, str>;

/// An OAuth error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The request is missing a required parameter, includes an unsupported
    /// parameter value, repeats a parameter, or is otherwise malformed.
    #[error("invalid_request: {0}")]
    InvalidRequest(Description),
    /// Client authentication failed (unknown client, no client
    /// authentication included, or unsupported authentication method).
    #[error("invalid_client: {0}")]
    InvalidClient(Description),
    /// The provided authorization grant or refresh token is invalid, expired,
    /// revoked, or was issued to another client.
    #[error("invalid_grant: {0}")]
    InvalidGrant(Description),
    /// The authenticated client is not authorized to use this grant type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Description),
    /// The authorization grant type is not supported by the server.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(Description),
    /// The requested scope is invalid, unknown, malformed, or exceeds the
    /// scope granted to the client.
    #[error("invalid_scope: {0}")]
    InvalidScope(Description),
    /// RFC 6750 §3.1: the access token is missing, expired, revoked,
    /// malformed, or bound to another certificate.
    #[error("invalid_token: {0}")]
    InvalidToken(Description),
    /// RFC 6750 §3.1: the access token lacks the scope the resource needs.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(Description),
    /// RFC 6749 §4.1.2.1: the authorization server does not support this
    /// `response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(Description),
    /// RFC 6749 §4.1.2.1: the user (or a failed CSRF check on the user's
    /// behalf) denied the request.
    #[error("access_denied: {0}")]
    AccessDenied(Description),
    /// OIDC Core §3.1.2.6: `prompt=none`, and the user is not logged in.
    #[error("login_required: {0}")]
    LoginRequired(Description),
    /// OIDC Core §3.1.2.6: `prompt=none`, and consent is needed.
    #[error("consent_required: {0}")]
    ConsentRequired(Description),
    /// OIDC Core §3.1.2.6: request objects are not supported.
    #[error("request_not_supported: {0}")]
    RequestNotSupported(Description),
    /// OIDC Core §3.1.2.6: `request_uri` is not supported.
    #[error("request_uri_not_supported: {0}")]
    RequestUriNotSupported(Description),
    /// Too many failed authentications from this address: retry after
    /// the seconds given (429, `Retry-After`).
    #[error("throttled for {0} s")]
    Throttled(u64),
    /// The caller asked for an answer form it cannot have (406), for
    /// example a JWT introspection answer for a caller that is no client.
    #[error("not acceptable: {0}")]
    NotAcceptable(Description),
    /// No endpoint at this path.
    #[error("no such endpoint")]
    NotFound,
    /// The endpoint exists, but not for this HTTP method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request's headers are larger than the server accepts.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request body is not `application/x-www-form-urlencoded`.
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// The server cannot serve the request now (for example its state cannot
    /// be written); the client may retry.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Description),
    /// An internal failure. The detail is logged, never sent.
    #[error("server_error: {0}")]
    ServerError(Description),
}

impl OAuthError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_)
            | Self::NotFound
            | Self::MethodNotAllowed
            | Self::PayloadTooLarge
            | Self::HeadersTooLarge
            | Self::UnsupportedMediaType
            | Self::NotAcceptable(_) => "invalid_request",
            Self::InvalidClient(_) | Self::Throttled(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::AccessDenied(_) => "access_denied",
            Self::LoginRequired(_) => "login_required",
            Self::ConsentRequired(_) => "consent_required",
            Self::RequestNotSupported(_) => "request_not_supported",
            Self::RequestUriNotSupported(_) => "request_uri_not_supported",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::ServerError(_) => "server_error",
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidClient(_) | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::AccessDenied(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The human-readable `error_description` sent to the client.
    pub fn description(&self) -> &str {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidClient(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::UnsupportedGrantType(d)
            | Self::InvalidScope(d)
            | Self::InvalidToken(d)
            | Self::UnsupportedResponseType(d)
            | Self::AccessDenied(d)
            | Self::LoginRequired(d)
            | Self::ConsentRequired(d)
            | Self::RequestNotSupported(d)
            | Self::RequestUriNotSupported(d)
            | Self::NotAcceptable(d)
            | Self::TemporarilyUnavailable(d) => d,
            Self::Throttled(_) => "too many failed attempts from this address; retry later",
            Self::InsufficientScope(_) => "the access token lacks the scope this resource needs",
            Self::NotFound => "there is no endpoint at this path",
            Self::MethodNotAllowed => "this endpoint does not take this HTTP method",
            Self::PayloadTooLarge => "request body too large",
            Self::HeadersTooLarge => "request headers too large",
            Self::UnsupportedMediaType => "content type must be application/x-www-form-urlencoded",
            Self::ServerError(_) => "internal server error",
        }
    }

    /// An internal failure: logs `detail` and answers a generic 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::ServerError(Cow::Owned(detail.to_string()))
    }
}

/// The RFC 6749 §5.2 error body.
#[derive(Debug, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Error code, for example `invalid_client`.
    pub error: String,
    /// Human-readable explanation.
    pub error_description: String,
}

#[derive(serde::Serialize)]
struct ErrorBodyRef<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBodyRef {
            error: self.code(),
            error_description: self.description(),
        })
        .unwrap_or_default();
        let mut resp = Response::builder()
            .status(self.status())
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::PRAGMA, "no-cache")
            .body(body);
        match self {
            Self::TemporarilyUnavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Throttled(wait) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
            }
            _ => {}
        }
        let challenge = match &self {
            Self::InvalidClient(_) => Some("Basic realm=\"certbound\"".to_string()),
            Self::InvalidToken(_) => {
                Some("Bearer realm=\"certbound\", error=\"invalid_token\"".to_string())
            }
            Self::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"certbound\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Every answer a client gets is ours: an error response the framework made
/// itself (plain text: an unknown path, a wrong method, a request it could
/// not parse) is replaced by the matching RFC 6749 §5.2 JSON error. Our own
/// errors (JSON) and pages (HTML) pass unchanged.
/// `allow` is the request path's methods, for the `Allow` header of a 405.
pub fn only_oauth_errors(resp: Response, allow: Option<&'static str>) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let ours = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if ours {
        return resp;
    }
    let err = match status {
        StatusCode::NOT_FOUND => OAuthError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => OAuthError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => OAuthError::PayloadTooLarge,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => OAuthError::HeadersTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => OAuthError::UnsupportedMediaType,
        s if s.is_server_error() => OAuthError::internal(format!("framework answered {s}")),
        _ => OAuthError::InvalidRequest("the request is malformed".into()),
    };
    let mut out = err.into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allow
    {
        out.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    out
}

impl From<crate::revocation::RevocationError> for OAuthError {
    /// The revocation list could not record something: fail closed with a
    /// retryable error; the client was not told it succeeded.
    fn from(err: crate::revocation::RevocationError) -> Self {
        Self::TemporarilyUnavailable(match err {
            crate::revocation::RevocationError::Unavailable => {
                "the revocation list cannot be written now; retry later".into()
            }
            crate::revocation::RevocationError::Busy => {
                "too many revocations are waiting for the disk; retry later".into()
            }
            crate::revocation::RevocationError::Stale => {
                "this server has lost touch with the shared revocation list; retry shortly".into()
            }
        })
    }
}

impl poem::error::ResponseError for OAuthError {
    fn status(&self) -> StatusCode {
        OAuthError::status(self)
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

impl ApiResponse for OAuthError {
    fn meta() -> MetaResponses {
        let content = || {
            vec![MetaMediaType {
                content_type: "application/json",
                schema: ErrorBody::schema_ref(),
            }]
        };
        let entry = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: content(),
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                entry(
                    400,
                    "Malformed request, invalid grant or scope (RFC 6749 §5.2)",
                ),
                entry(
                    401,
                    "Client authentication failed: `invalid_client`; or (userinfo, Bearer introspection) the access token is not active or not presented with its certificate: `invalid_token`",
                ),
                entry(
                    403,
                    "(userinfo, Bearer introspection) the access token lacks the scope needed (`openid`, the introspection scope): `insufficient_scope`",
                ),
                entry(
                    406,
                    "(introspection) a JWT answer asked for by a user caller, which cannot be its audience: `invalid_request`",
                ),
                entry(413, "Request body too large: `invalid_request`"),
                entry(415, "Unsupported content type: `invalid_request`"),
                entry(
                    429,
                    "(introspection, user callers) too many failed passwords from this address; `Retry-After` says when to retry: `invalid_client`",
                ),
                entry(500, "Internal error: `server_error`"),
                entry(
                    503,
                    "State cannot be written now: `temporarily_unavailable`",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_follows_rfc6749() {
        let cases = [
            (
                OAuthError::InvalidRequest("x".into()),
                400,
                "invalid_request",
            ),
            (OAuthError::InvalidClient("x".into()), 401, "invalid_client"),
            (OAuthError::InvalidGrant("x".into()), 400, "invalid_grant"),
            (
                OAuthError::UnauthorizedClient("x".into()),
                400,
                "unauthorized_client",
            ),
            (
                OAuthError::UnsupportedGrantType("x".into()),
                400,
                "unsupported_grant_type",
            ),
            (OAuthError::InvalidScope("x".into()), 400, "invalid_scope"),
            (OAuthError::InvalidToken("x".into()), 401, "invalid_token"),
            (
                OAuthError::InsufficientScope("openid".into()),
                403,
                "insufficient_scope",
            ),
            (OAuthError::PayloadTooLarge, 413, "invalid_request"),
            (OAuthError::NotFound, 404, "invalid_request"),
            (OAuthError::HeadersTooLarge, 431, "invalid_request"),
            (OAuthError::MethodNotAllowed, 405, "invalid_request"),
            (OAuthError::UnsupportedMediaType, 415, "invalid_request"),
            (
                OAuthError::TemporarilyUnavailable("x".into()),
                503,
                "temporarily_unavailable",
            ),
            (
                OAuthError::ServerError("secret detail".into()),
                500,
                "server_error",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code);
            let resp = err.clone().into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                resp.headers().contains_key(header::WWW_AUTHENTICATE),
                status == 401 || status == 403
            );
        }
    }

    #[test]
    fn framework_errors_become_oauth_errors() {
        for (status, code) in [(404, 404), (405, 405), (400, 400), (500, 500), (413, 413)] {
            let framework = Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .content_type("text/plain; charset=utf-8")
                .body("Expected input type \"string\", found null.");
            let out = only_oauth_errors(framework, Some("POST"));
            assert_eq!(out.status().as_u16(), code);
            assert_eq!(out.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(out.headers().contains_key(header::ALLOW), status == 405);
        }
        let ours = OAuthError::InvalidGrant("x".into()).into_response();
        assert_eq!(
            only_oauth_errors(ours, None).status(),
            StatusCode::BAD_REQUEST
        );
        let ok = Response::builder().body("fine");
        assert_eq!(only_oauth_errors(ok, None).status(), StatusCode::OK);
    }

    #[test]
    fn internal_detail_is_not_sent() {
        let err = OAuthError::ServerError("disk /secret/path failed".into());
        assert_eq!(err.description(), "internal server error");
    }
}
