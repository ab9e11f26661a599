//! Token revocation (RFC 7009): the client that a token was issued to asks
//! for it to be refused from now on. An access token's `jti` goes on the
//! revocation list; a refresh token revokes its whole family, with the
//! access tokens issued beside it (§2.1). Durably, before the answer.

use poem_openapi::Object;

use super::ClientParams;
use super::extract::ClientAuth;
use crate::AppState;
use crate::error::OAuthError;
use crate::revocation::{Kind, Record};
use crate::settings::Settings;
use crate::token::Inactive;

/// Revocation request (RFC 7009 §2.1).
#[derive(Debug, Object, serde::Deserialize)]
pub struct RevokeRequest {
    /// The token to revoke.
    pub token: String,
    /// `access_token` or `refresh_token`. A hint only: any value is
    /// accepted, and the token is looked up whatever it says (§2.1).
    pub token_type_hint: Option<String>,
    /// Client credentials sent in the form.
    #[oai(flatten)]
    #[serde(flatten)]
    pub client: ClientParams,
}

impl super::extract::FormFields for RevokeRequest {
    const REQUIRED: &'static [&'static str] = &["token"];
}

/// Authenticates the client, then revokes the token if it is valid and was
/// issued to that client.
///
/// - invalid, expired, unknown or already revoked token: `Ok` (§2.2: the
///   client cannot do anything about it, and the purpose is achieved);
/// - a valid token of another client: `Ok`, and nothing changes (§2.1: the
///   server "invalidates the token" only for its own client; answering
///   differently would tell the caller the token is valid);
/// - a validly signed refresh token of this client revokes its family even
///   when it was already used: an old, rotated refresh token presented
///   again is a replay wherever it appears (RFC 9700 §4.14.2);
/// - the list cannot be written: `temporarily_unavailable` (503), and the
///   token stays valid.
pub async fn revoke(
    settings: &Settings,
    state: &AppState,
    auth: &ClientAuth,
    form: &RevokeRequest,
    now: u64,
) -> Result<(), OAuthError> {
    let client = settings
        .clients
        .authenticate(auth.credentials(&form.client)?, now)?;
    let ours = |client_id: &str| {
        let ours = client_id == client.client.id;
        if !ours {
            tracing::debug!(client_id = %client.client.id, "revocation of another client's token: nothing done");
        }
        ours
    };
    match state.active_access_token(settings, &form.token, now) {
        Ok(claims) if ours(&claims.client_id) => {
            let record = Record::new(Kind::Jti, &claims.jti, claims.exp)
                .ok_or_else(|| OAuthError::internal("verified jti is not a list identifier"))?;
            state.revocations.record(record).await?;
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(Inactive::WrongType) => {
            match settings
                .tokens
                .verify_refresh(&settings.keys, &form.token, now)
            {
                Ok(refresh) if ours(&refresh.client_id) => {
                    if state.revocations.contains(Kind::Family, &refresh.fid)? {
                        return Ok(());
                    }
                    if state.revocations.contains(Kind::Jti, &refresh.jti)? {
                        tracing::warn!(client_id = %client.client.id, "a used refresh token was presented for revocation: its token family is revoked");
                    }
                    super::token::revoke_family(
                        &settings.tokens,
                        &state.revocations,
                        &refresh.fid,
                        now,
                    )
                    .await
                }
                Ok(_) => Ok(()),
                Err(reason) => {
                    tracing::debug!(%reason, "revocation of an inactive token: nothing to do");
                    Ok(())
                }
            }
        }
        Err(reason) => {
            state.fail_closed(&reason)?;
            tracing::debug!(%reason, "revocation of an inactive token: nothing to do");
            Ok(())
        }
    }
}
