//! The HTTP endpoints. Handlers are thin: they extract, call the domain
//! function in the submodule, and return its result; errors are mapped to
//! HTTP once, in [`crate::error`].

pub mod authorize;
pub mod discovery;
pub mod extract;
pub mod form;
pub mod introspect;
pub mod introspection_jwt;
pub mod paths;
mod raw_json;
pub mod revoke;
pub mod token;
pub mod user_caller;
pub mod userinfo;

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use self::discovery::{JwkSet, ServerMetadata};
use self::extract::{ClientAuth, OAuthForm, RawJson, Serialized};
use self::introspect::IntrospectRequest;
use self::introspection_jwt::IntrospectionResponse;
use self::revoke::RevokeRequest;
use self::token::{TokenBody, TokenRequest};
use crate::AppState;
use crate::error::OAuthError;
use crate::keys::unix_now;
use crate::settings::Settings;

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
        Serialized<TokenBody>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Pragma")] String,
    ),
}

/// A successful revocation response (RFC 7009 §2.2): an empty body.
#[derive(ApiResponse)]
pub enum RevocationResponse {
    /// Revoked, or the token was already invalid; either way it is no
    /// longer accepted.
    #[oai(status = 200)]
    Ok(#[oai(header = "Cache-Control")] String),
}

/// The JWKS, with how long it may be cached: no longer than a new key is
/// published before it signs (`keys.publish_before`).
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// Every published key.
    #[oai(status = 200)]
    Ok(RawJson<JwkSet>, #[oai(header = "Cache-Control")] String),
}

/// A UserInfo response (OpenID Connect Core §5.3.2).
#[derive(ApiResponse)]
pub enum UserInfoResponse {
    /// The user's claims.
    #[oai(status = 200)]
    Ok(
        Serialized<crate::oidc::UserInfo>,
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
        state: Data<&Arc<AppState>>,
        settings: Data<&Arc<Settings>>,
        auth: ClientAuth,
        form: OAuthForm<TokenRequest>,
    ) -> Result<TokenResponse, OAuthError> {
        let body = token::issue(&settings, &state.revocations, &auth, &form.0, unix_now()).await?;
        Ok(TokenResponse::Ok(
            Serialized(body),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Introspection endpoint (RFC 7662).
    ///
    /// The caller authenticates with HTTP Basic, with its own mTLS client
    /// authentication (send `client_id`), or with a Bearer access token that
    /// holds the introspection scope. Stateless: the token is verified and
    /// decoded; any invalid token answers `{"active": false}`. With `Accept:
    /// application/token-introspection+jwt` the answer is a JWT signed by the
    /// server for the calling client (RFC 9701).
    #[oai(
        path = "/oauth2/introspect",
        method = "post",
        tag = "Tag::OAuth",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        req: &poem::Request,
        state: Data<&Arc<AppState>>,
        settings: Data<&Arc<Settings>>,
        tenants: Data<&crate::tenant::Tenants>,
        auth: ClientAuth,
        form: OAuthForm<IntrospectRequest>,
    ) -> Result<IntrospectionResponse, OAuthError> {
        let lines: Vec<&str> = req
            .headers()
            .get_all(poem::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let accept = (!lines.is_empty()).then(|| lines.join(","));
        let accept = introspection_jwt::Accept::parse(accept.as_deref());
        introspect::introspect(
            &settings,
            &tenants,
            &state,
            &auth,
            &form.0,
            accept,
            unix_now(),
        )
        .await
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
        state: Data<&Arc<AppState>>,
        settings: Data<&Arc<Settings>>,
        auth: ClientAuth,
        form: OAuthForm<RevokeRequest>,
    ) -> Result<RevocationResponse, OAuthError> {
        revoke::revoke(&settings, &state, &auth, &form.0, unix_now()).await?;
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
        state: Data<&Arc<AppState>>,
        settings: Data<&Arc<Settings>>,
        auth: ClientAuth,
    ) -> Result<UserInfoResponse, OAuthError> {
        let body = userinfo::userinfo(&settings, &state, &auth, unix_now())?;
        Ok(UserInfoResponse::Ok(Serialized(body), "no-store".into()))
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
        state: Data<&Arc<AppState>>,
        settings: Data<&Arc<Settings>>,
        auth: ClientAuth,
    ) -> Result<UserInfoResponse, OAuthError> {
        let body = userinfo::userinfo(&settings, &state, &auth, unix_now())?;
        Ok(UserInfoResponse::Ok(Serialized(body), "no-store".into()))
    }

    /// JSON Web Key Set (RFC 7517): every public signing key, `kid` = RFC
    /// 7638 thumbprint. A new key is here `keys.publish_before` seconds
    /// before it signs; `Cache-Control: max-age` is no longer than that.
    #[oai(
        path = "/oauth2/jwks",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "jwks"
    )]
    async fn jwks(&self, settings: Data<&Arc<Settings>>) -> JwksResponse {
        let cache = match settings.config.keys.publish_before {
            0 => "no-cache".to_string(),
            secs => format!("public, max-age={secs}"),
        };
        JwksResponse::Ok(RawJson::new(settings.documents.jwks.clone()), cache)
    }

    /// Authorization server metadata (RFC 8414).
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "oauthMetadata"
    )]
    async fn oauth_metadata(&self, settings: Data<&Arc<Settings>>) -> RawJson<ServerMetadata> {
        RawJson::new(settings.documents.oauth.clone())
    }

    /// OpenID Provider metadata at WSO2's path (`/oauth2/token/.well-known/openid-configuration`,
    /// also under `/t/{domain}`): the same document.
    #[oai(
        path = "/oauth2/token/.well-known/openid-configuration",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "openidConfigurationWso2"
    )]
    async fn openid_configuration_wso2(
        &self,
        settings: Data<&Arc<Settings>>,
    ) -> RawJson<ServerMetadata> {
        RawJson::new(settings.documents.openid.clone())
    }

    /// OpenID Provider metadata (OpenID Connect Discovery 1.0).
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        tag = "Tag::Discovery",
        operation_id = "openidConfiguration"
    )]
    async fn openid_configuration(
        &self,
        settings: Data<&Arc<Settings>>,
    ) -> RawJson<ServerMetadata> {
        RawJson::new(settings.documents.openid.clone())
    }
}

/// The methods each path takes, for the `Allow` header of a 405 (RFC 9110
/// §15.5.6). A test checks it against the OpenAPI document.
pub const METHODS: &[(&str, &str)] = &[
    (paths::AUTHORIZE, "GET, POST"),
    (paths::TOKEN, "POST"),
    (paths::INTROSPECT, "POST"),
    (paths::REVOKE, "POST"),
    (paths::USERINFO, "GET, POST"),
    (paths::JWKS, "GET"),
    (paths::OAUTH_METADATA, "GET"),
    (paths::OPENID_METADATA, "GET"),
    (paths::WSO2_OPENID_METADATA, "GET"),
    (paths::OPENAPI, "GET"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
];

/// The `Allow` value for `path`, if it is an endpoint.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    METHODS.iter().find(|(p, _)| *p == path).map(|(_, m)| *m)
}

/// Client credentials in a form body (RFC 6749 §2.3.1, RFC 8705 §2).
#[derive(Debug, Default, Object, serde::Deserialize)]
pub struct ClientParams {
    /// The client id; required for certificate and `client_secret_post`
    /// authentication.
    pub client_id: Option<String>,
    /// `client_secret_post` only.
    pub client_secret: Option<String>,
}

/// RFC 6750 §2.1 and RFC 8705 §3: the claims of the request's Bearer
/// access token if it is active and, when certificate-bound, came with its
/// certificate; else `invalid_token`.
pub fn bearer_claims(
    settings: &Settings,
    state: &AppState,
    token: &str,
    auth: &ClientAuth,
    now: u64,
) -> Result<Arc<crate::token_cache::Verified>, OAuthError> {
    let claims = state
        .active_access_token(settings, token, now)
        .map_err(|reason| {
            if let Err(unavailable) = state.fail_closed(&reason) {
                return unavailable;
            }
            tracing::debug!(%reason, "Bearer token refused");
            OAuthError::InvalidToken("the access token is not active".into())
        })?;
    if claims.cnf.is_some() {
        crate::cert::check_binding(claims.cnf.as_ref(), auth.certificate()?.as_deref())
            .map_err(|e| OAuthError::InvalidToken(e.to_string().into()))?;
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
