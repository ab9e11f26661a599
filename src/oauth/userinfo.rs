//! The UserInfo endpoint (OpenID Connect Core §5.3): a Bearer access token
//! (RFC 6750 §2.1) holding `openid` returns its user's claims for the granted
//! scopes. A certificate-bound token must come with the same certificate
//! (RFC 8705 §3).

use super::extract::ClientAuth;
use crate::AppState;
use crate::error::OAuthError;
use crate::oidc::{OPENID, UserInfo};
use crate::settings::Settings;

/// The claims for the token's user and scope.
pub fn userinfo(
    settings: &Settings,
    state: &AppState,
    auth: &ClientAuth,
    now: u64,
) -> Result<UserInfo, OAuthError> {
    let Some(token) = auth.bearer() else {
        return Err(OAuthError::InvalidToken(
            "a Bearer access token is required".into(),
        ));
    };
    let claims = super::bearer_claims(settings, state, token, auth, now)?;
    if !crate::scope::contains(&claims.scope, OPENID) {
        return Err(OAuthError::InsufficientScope(OPENID.into()));
    }
    let user = claims
        .username
        .as_deref()
        .and_then(|u| settings.users.get(u))
        .ok_or_else(|| {
            OAuthError::InvalidToken("the access token's user no longer exists".into())
        })?;
    Ok(UserInfo::for_scope(user, &claims.scope))
}
