//! The HTTP endpoints. Handlers are thin: they extract, call the domain
//! function in the submodule, and return its result; errors are mapped to
//! HTTP once, in [`crate::error`].

pub mod authorize;
pub mod discovery;
pub mod extract;
pub mod introspect;
pub mod revoke;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use self::discovery::{JwkSet, ServerMetadata};
use self::extract::{AuthHeader, Authorization, OAuthForm, RawJson};
use self::introspect::{IntrospectRequest, Introspection};
use self::revoke::RevokeRequest;
use self::token::{TokenBody, TokenRequest};
use crate::AppState;
use crate::clients::{Authenticated, Credentials};
use crate::error::OAuthError;
use crate::keys::unix_now;

/// The certbound API.
pub struct Api;

#[derive(Tags)]
enum Tag {
    /// Token issuance and inspection
    OAuth,
    /// Metadata and keys for clients and resource servers
    Discovery,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// The issued token.
    #[oai(status = 200)]
    Ok(
        Json<TokenBody>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

/// A successful introspection response (RFC 7662 §2.2).
#[derive(ApiResponse)]
pub enum IntrospectionResponse {
    /// The token's state; `{"active": false}` for any invalid token.
    #[oai(status = 200)]
    Ok(Json<Introspection>, #[oai(header = "Cache-Control")] String),
}

/// A successful revocation response (RFC 7009 §2.2): an empty body.
#[derive(ApiResponse)]
pub enum RevocationResponse {
    /// Revoked, or the token was already invalid; either way it is no
    /// longer accepted.
    #[oai(status = 200)]
    Ok(#[oai(header = "Cache-Control")] String),
}

/// A UserInfo response (OpenID Connect Core §5.3.2).
#[derive(ApiResponse)]
pub enum UserInfoResponse {
    /// The user's claims.
    #[oai(status = 200)]
    Ok(
        Json<crate::oidc::UserInfo>,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[OpenApi]
impl Api {
    /// Token endpoint (RFC 6749 §3.2, RFC 8705 §2).
    ///
    /// Grants: `client_credentials`; `authorization_code` (with the PKCE
    /// `code_verifier`, RFC 7636); `refresh_token` (rotated: each refresh
    /// token works once, a reused one revokes its whole family).
    ///
    /// The client authenticates with its TLS client certificate
    /// (`tls_client_auth`, `self_signed_tls_client_auth`; send `client_id`),
    /// with HTTP Basic (`client_secret_basic`) or with `client_secret` in the
    /// form (`client_secret_post`). Behind a TLS-terminating proxy the
    /// certificate comes in the configured header, believed only from
    /// `mtls.trusted_proxies`. Access tokens are RFC 9068 JWTs bound to the
    /// certificate by `cnf.x5t#S256`.
    #[oai(
        path = "/oauth2/token",
        method = "post",
        tag = "Tag::OAuth",
        operation_id = "token"
    )]
    async fn token(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        auth: AuthHeader,
        form: OAuthForm<TokenRequest>,
    ) -> Result<TokenResponse, OAuthError> {
        let body = token::issue(&state, req, auth.0, form.0, unix_now()).await?;
        Ok(TokenResponse::Ok(
            Json(body),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Introspection endpoint (RFC 7662).
    ///
    /// The caller authenticates with HTTP Basic, with its own mTLS client
    /// authentication (send `client_id`), or with a Bearer access token that
    /// holds the introspection scope. Stateless: the token is verified and
    /// decoded; any invalid token answers `{"active": false}`.
    #[oai(
        path = "/oauth2/introspect",
        method = "post",
        tag = "Tag::OAuth",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        auth: AuthHeader,
        form: OAuthForm<IntrospectRequest>,
    ) -> Result<IntrospectionResponse, OAuthError> {
        let body = introspect::introspect(&state, req, auth.0, form.0, unix_now())?;
        Ok(IntrospectionResponse::Ok(Json(body), "no-store".into()))
    }

    /// Revocation endpoint (RFC 7009).
    ///
    /// The client authenticates as at the token endpoint. A valid token
    /// issued to it is put on the revocation list, durably, before the
    /// answer: introspection then reports it inactive. Invalid, expired or
    /// unknown tokens also get 200 (RFC 7009 §2.2), and so does a token
    /// issued to another client, which stays valid. A refresh token revokes
    /// its whole family, even one that was already used. If the list cannot
    /// be written the answer is 503 `temporarily_unavailable` and the token
    /// stays valid. Resource servers that validate tokens
    /// offline with the JWKS cannot see revocations.
    #[oai(
        path = "/oauth2/revoke",
        method = "post",
        tag = "Tag::OAuth",
        operation_id = "revoke"
    )]
    async fn revoke(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        auth: AuthHeader,
        form: OAuthForm<RevokeRequest>,
    ) -> Result<RevocationResponse, OAuthError> {
        revoke::revoke(&state, req, auth.0, form.0, unix_now()).await?;
        Ok(RevocationResponse::Ok("no-store".into()))
    }

    /// UserInfo endpoint (OpenID Connect Core §5.3).
    ///
    /// Send an access token holding `openid` as `Authorization: Bearer`;
    /// a certificate-bound token needs the same client certificate. Returns
    /// `sub` and the claims of the granted scopes (`profile`: `name`,
    /// `given_name`, `family_name`; `email`: `email`, `email_verified`).
    #[oai(
        path = "/oauth2/userinfo",
        method = "get",
        tag = "Tag::OAuth",
        operation_id = "userinfo"
    )]
    async fn userinfo(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        auth: AuthHeader,
    ) -> Result<UserInfoResponse, OAuthError> {
        let body = userinfo::userinfo(&state, req, auth.0, unix_now())?;
        Ok(UserInfoResponse::Ok(Json(body), "no-store".into()))
    }

    /// UserInfo endpoint, POST form (OpenID Connect Core §5.3.1).
    #[oai(
        path = "/oauth2/userinfo",
        method = "post",
        tag = "Tag::OAuth",
        operation_id = "userinfoPost"
    )]
    async fn userinfo_post(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        auth: AuthHeader,
    ) -> Result<UserInfoResponse, OAuthError> {
        let body = userinfo::userinfo(&state, req, auth.0, unix_now())?;
        Ok(UserInfoResponse::Ok(Json(body), "no-store".into()))
    }

    /// JSON Web Key Set (RFC 7517): every public signing key, `kid` = RFC
    /// 7638 thumbprint.
    #[oai(
        path = "/oauth2/jwks",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "jwks"
    )]
    async fn jwks(&self, state: Data<&Arc<AppState>>) -> RawJson<JwkSet> {
        RawJson::new(state.documents.jwks.clone())
    }

    /// Authorization server metadata (RFC 8414).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "oauthMetadata"
    )]
    async fn oauth_metadata(&self, state: Data<&Arc<AppState>>) -> RawJson<ServerMetadata> {
        RawJson::new(state.documents.oauth.clone())
    }

    /// OpenID Provider metadata (OpenID Connect Discovery 1.0).
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "openidConfiguration"
    )]
    async fn openid_configuration(&self, state: Data<&Arc<AppState>>) -> RawJson<ServerMetadata> {
        RawJson::new(state.documents.openid.clone())
    }
}

/// The methods each path takes, for the `Allow` header of a 405 (RFC 9110
/// §15.5.6). A test checks it against the OpenAPI document.
pub const METHODS: &[(&str, &str)] = &[
    ("/oauth2/authorize", "GET, POST"),
    ("/oauth2/token", "POST"),
    ("/oauth2/introspect", "POST"),
    ("/oauth2/revoke", "POST"),
    ("/oauth2/userinfo", "GET, POST"),
    ("/oauth2/jwks", "GET"),
    ("/.well-known/oauth-authorization-server", "GET"),
    ("/.well-known/openid-configuration", "GET"),
    ("/openapi.json", "GET"),
];

/// The `Allow` value for `path`, if it is an endpoint.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    METHODS.iter().find(|(p, _)| *p == path).map(|(_, m)| *m)
}

/// Client credentials in a form body (RFC 6749 §2.3.1, RFC 8705 §2).
#[derive(Debug, Default, Object)]
pub struct ClientParams {
    /// The client id; required for certificate and `client_secret_post`
    /// authentication.
    pub client_id: Option<String>,
    /// `client_secret_post` only.
    pub client_secret: Option<String>,
}

/// Authenticates the client of a request from every credential it carries.
pub(crate) fn authenticate_client(
    state: &AppState,
    req: &Request,
    auth: Option<Authorization>,
    params: &ClientParams,
    now: u64,
) -> Result<Authenticated, OAuthError> {
    let basic = match auth {
        None => None,
        Some(Authorization::Basic(id, secret)) => Some((id, secret)),
        Some(Authorization::Bearer(_)) => {
            return Err(OAuthError::InvalidClient(
                "Bearer is not a client authentication method".into(),
            ));
        }
    };
    let certificate = crate::cert::from_request(req, state.cert_header.as_ref())?;
    state.clients.authenticate(
        Credentials {
            basic,
            client_id: params.client_id.as_deref(),
            client_secret: params.client_secret.as_deref(),
            certificate,
        },
        now,
    )
}
