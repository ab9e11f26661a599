//! The token endpoint's grants (RFC 6749 §4.4 client credentials; the
//! authorization-code and refresh-token grants come with their issues).

use poem::Request;
use poem_openapi::Object;

use super::ClientParams;
use super::extract::Authorization;
use crate::AppState;
use crate::clients::GrantType;
use crate::error::OAuthError;
use crate::token::AccessGrant;

/// Token request (RFC 6749 §4.4.2).
#[derive(Debug, Object)]
pub struct TokenRequest {
    /// `client_credentials`.
    pub grant_type: String,
    /// Client credentials sent in the form.
    #[oai(flatten)]
    pub client: ClientParams,
    /// Space-separated scopes; omitted: every scope the client may have.
    pub scope: Option<String>,
}

/// Token response (RFC 6749 §5.1).
#[derive(Debug, Object, serde::Deserialize)]
pub struct TokenBody {
    /// An RFC 9068 JWT, bound to the client certificate by `cnf.x5t#S256`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scope.
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
}

/// Authenticates the client and runs the grant.
pub fn issue(
    state: &AppState,
    req: &Request,
    auth: Option<Authorization>,
    form: TokenRequest,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    let grant = GrantType::parse(&form.grant_type).ok_or_else(|| {
        OAuthError::UnsupportedGrantType(
            format!("grant_type {:?} is not supported", form.grant_type).into(),
        )
    })?;
    let client = super::authenticate_client(state, req, auth, &form.client, now)?;
    if !client.client.grant_types.contains(&grant) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use this grant type".into(),
        ));
    }
    match grant {
        GrantType::ClientCredentials => {
            let scope = crate::scope::grant(form.scope.as_deref(), &client.client.scopes)?;
            let access_token = state.tokens.mint(
                &state.keys,
                AccessGrant {
                    sub: &client.client.id,
                    client_id: &client.client.id,
                    scope: &scope,
                    binding: client.binding(),
                },
                now,
            )?;
            Ok(TokenBody {
                access_token,
                token_type: "Bearer".into(),
                expires_in: state.tokens.lifetime,
                scope: (!scope.is_empty()).then_some(scope),
            })
        }
        GrantType::AuthorizationCode | GrantType::RefreshToken => {
            Err(OAuthError::UnsupportedGrantType(
                "this grant type is not enabled on this server".into(),
            ))
        }
    }
}
