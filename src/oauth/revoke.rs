//! Token revocation (RFC 7009): the client that a token was issued to asks
//! for it to be refused from now on. An access token's `jti` goes on the
//! revocation list; a refresh token revokes its whole family, with the
//! access tokens issued beside it (§2.1). Durably, before the answer.

use poem::Request;
use poem_openapi::Object;

use super::ClientParams;
use super::extract::Authorization;
use crate::AppState;
use crate::error::OAuthError;
use crate::revocation::{Kind, Record};
use crate::token::Inactive;

/// Revocation request (RFC 7009 §2.1).
#[derive(Debug, Object)]
pub struct RevokeRequest {
    /// The token to revoke.
    pub token: String,
    /// `access_token` or `refresh_token`. A hint only: any value is
    /// accepted, and the token is looked up whatever it says (§2.1).
    pub token_type_hint: Option<String>,
    /// Client credentials sent in the form.
    #[oai(flatten)]
    pub client: ClientParams,
}

/// Authenticates the client, then revokes the token if it is valid and was
/// issued to that client.
///
/// - invalid, expired, unknown or already revoked token: `Ok` (§2.2: the
///   client cannot do anything about it, and the purpose is achieved);
/// - a valid token of another client: `invalid_grant` ("issued to another
///   client", RFC 6749 §5.2), and the token stays valid;
/// - the list cannot be written: `temporarily_unavailable` (503), and the
///   token stays valid.
pub async fn revoke(
    state: &AppState,
    req: &Request,
    auth: Option<Authorization>,
    form: RevokeRequest,
    now: u64,
) -> Result<(), OAuthError> {
    let client = super::authenticate_client(state, req, auth, &form.client, now)?;
    let not_theirs = || OAuthError::InvalidGrant("the token was issued to another client".into());
    let claims = match state.active_access_token(&form.token, now) {
        Ok(claims) => claims,
        Err(Inactive::WrongType) => {
            return match state.active_refresh_token(&form.token, now) {
                Ok(refresh) if refresh.client_id != client.client.id => Err(not_theirs()),
                Ok(refresh) => super::token::revoke_family(state, &refresh.fid, now).await,
                Err(reason) => {
                    tracing::debug!(%reason, "revocation of an inactive token: nothing to do");
                    Ok(())
                }
            };
        }
        Err(reason) => {
            tracing::debug!(%reason, "revocation of an inactive token: nothing to do");
            return Ok(());
        }
    };
    if claims.client_id != client.client.id {
        return Err(not_theirs());
    }
    let record = Record::new(Kind::Jti, &claims.jti, claims.exp)
        .ok_or_else(|| OAuthError::internal("token jti is not a valid list identifier"))?;
    state.revocations.record(record).await?;
    Ok(())
}
