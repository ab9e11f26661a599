//! Discovery documents: RFC 8414 authorization server metadata (with the
//! RFC 8705 §5 members), OpenID Connect Discovery, and the JWKS (RFC 7517).
//! All are serialised once at startup.

use bytes::Bytes;
use poem_openapi::Object;
use serde::Serialize;

use crate::clients::{AUTH_METHODS, Clients, GrantType};
use crate::config::Config;
use crate::keys::KeySet;

/// Server metadata (RFC 8414 §2; RFC 8705 §3.3, §5).
#[derive(Debug, Clone, Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct ServerMetadata {
    /// Issuer identifier.
    pub issuer: String,
    /// Authorization endpoint (RFC 6749 §3.1): only when some client may
    /// use the authorization-code grant and some user may sign in.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: String,
    /// UserInfo endpoint (OIDC Core §5.3): with the authorization endpoint.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// Introspection endpoint (RFC 7662).
    pub introspection_endpoint: String,
    /// Revocation endpoint (RFC 7009).
    pub revocation_endpoint: String,
    /// JWKS.
    pub jwks_uri: String,
    /// Grant types.
    pub grant_types_supported: Vec<String>,
    /// `code` only.
    pub response_types_supported: Vec<String>,
    /// `query` only.
    pub response_modes_supported: Vec<String>,
    /// PKCE methods (RFC 7636): `S256` only.
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// Algorithms of the signing keys, for ID tokens.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Algorithms of JWT introspection answers (RFC 9701 §7).
    pub introspection_signing_alg_values_supported: Vec<String>,
    /// Claims in ID tokens and UserInfo responses.
    pub claims_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Caller authentication methods at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication methods at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8705 §3.3: access tokens are certificate-bound.
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Union of the registered clients' scopes.
    pub scopes_supported: Vec<String>,
    /// OIDC: subject identifier types (`public`).
    pub subject_types_supported: Vec<String>,
    /// RFC 8705 §5: endpoints on the mTLS host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls_endpoint_aliases: Option<MtlsEndpointAliases>,
}

/// RFC 8705 §5 `mtls_endpoint_aliases`.
#[derive(Debug, Clone, Object, Serialize)]
pub struct MtlsEndpointAliases {
    /// Token endpoint on the mTLS host.
    pub token_endpoint: String,
    /// Introspection endpoint on the mTLS host.
    pub introspection_endpoint: String,
    /// Revocation endpoint on the mTLS host.
    pub revocation_endpoint: String,
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Debug, Clone, Object)]
pub struct JwkSet {
    /// Public keys, each with `kid`, `alg` and `use`.
    pub keys: Vec<serde_json::Value>,
}

/// The serialised documents.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    /// `/.well-known/oauth-authorization-server`
    pub oauth: Bytes,
    /// `/.well-known/openid-configuration`
    pub openid: Bytes,
    /// `/oauth2/jwks`
    pub jwks: Bytes,
}

impl Documents {
    /// Serialises the documents for this configuration.
    pub fn build(
        config: &Config,
        clients: &Clients,
        users: &crate::users::Users,
        keys: &KeySet,
    ) -> Result<Self, String> {
        let issuer = config.issuer();
        use super::paths::{self, url as at};
        let mut scopes: Vec<String> = clients
            .iter()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect();
        scopes.sort();
        scopes.dedup();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut algs: Vec<String> = keys
            .all()
            .iter()
            .map(|k| k.alg.name().to_string())
            .collect();
        algs.sort();
        algs.dedup();
        // What is usable: the grants some client has; the browser flow
        // only when some client has it and some user can sign in.
        let mut grants: Vec<String> = GrantType::ALL
            .into_iter()
            .filter(|g| clients.iter().any(|c| c.grant_types.contains(g)))
            .map(|g| g.name().to_string())
            .collect();
        if grants.is_empty() {
            grants.push(GrantType::ClientCredentials.name().into());
        }
        let browser = !users.is_empty() && grants.iter().any(|g| g == "authorization_code");
        let metadata = ServerMetadata {
            authorization_endpoint: browser.then(|| at(&issuer, paths::AUTHORIZE)),
            token_endpoint: at(&issuer, paths::TOKEN),
            userinfo_endpoint: browser.then(|| at(&issuer, paths::USERINFO)),
            introspection_endpoint: at(&issuer, paths::INTROSPECT),
            revocation_endpoint: at(&issuer, paths::REVOKE),
            jwks_uri: at(&issuer, paths::JWKS),
            issuer: issuer.clone(),
            grant_types_supported: grants,
            response_types_supported: strings(&["code"]),
            response_modes_supported: strings(&["query"]),
            code_challenge_methods_supported: strings(&["S256"]),
            authorization_response_iss_parameter_supported: true,
            introspection_signing_alg_values_supported: algs.clone(),
            id_token_signing_alg_values_supported: algs,
            claims_supported: strings(&crate::oidc::CLAIMS_SUPPORTED),
            token_endpoint_auth_methods_supported: strings(&AUTH_METHODS),
            introspection_endpoint_auth_methods_supported: strings(&AUTH_METHODS),
            revocation_endpoint_auth_methods_supported: strings(&AUTH_METHODS),
            tls_client_certificate_bound_access_tokens: true,
            scopes_supported: scopes,
            subject_types_supported: strings(&["public"]),
            mtls_endpoint_aliases: config.mtls.endpoint_aliases_base.as_deref().map(|base| {
                MtlsEndpointAliases {
                    token_endpoint: at(base, paths::TOKEN),
                    introspection_endpoint: at(base, paths::INTROSPECT),
                    revocation_endpoint: at(base, paths::REVOKE),
                }
            }),
        };
        let oauth = serde_json::to_vec(&metadata).map_err(|e| e.to_string())?;
        let openid = serde_json::to_vec(&metadata).map_err(|e| e.to_string())?;
        Ok(Self {
            oauth: Bytes::from(oauth),
            openid: Bytes::from(openid),
            jwks: Bytes::copy_from_slice(keys.jwks_json()),
        })
    }
}
