//! Every endpoint's path, relative to one base: the issuer for discovery
//! URLs, `/` for the routes today. A second base (a tenant's `/t/{domain}`)
//! is then a parameter, not a rewrite.

/// Authorization endpoint (RFC 6749 §3.1).
pub const AUTHORIZE: &str = "/oauth2/authorize";
/// Token endpoint (RFC 6749 §3.2).
pub const TOKEN: &str = "/oauth2/token";
/// Introspection endpoint (RFC 7662).
pub const INTROSPECT: &str = "/oauth2/introspect";
/// Revocation endpoint (RFC 7009).
pub const REVOKE: &str = "/oauth2/revoke";
/// UserInfo endpoint (OpenID Connect Core §5.3).
pub const USERINFO: &str = "/oauth2/userinfo";
/// JWKS (RFC 7517).
pub const JWKS: &str = "/oauth2/jwks";
/// Authorization server metadata (RFC 8414).
pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
/// OpenID Provider metadata (OpenID Connect Discovery 1.0).
pub const OPENID_METADATA: &str = "/.well-known/openid-configuration";
/// OpenID Provider metadata where WSO2 serves it.
pub const WSO2_OPENID_METADATA: &str = "/oauth2/token/.well-known/openid-configuration";
/// The OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";

/// `path` under `base` (a URL or a path prefix; a trailing `/` is ignored).
pub fn url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
