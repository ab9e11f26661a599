//! The UserInfo endpoint (OpenID Connect Core §5.3): a Bearer access token
//! (RFC 6750 §2.1) holding `openid` returns its user's claims for the granted
//! scopes. A certificate-bound token must come with the same certificate
//! (RFC 8705 §3).

use poem::Request;

use super::extract::Authorization;
use crate::AppState;
use crate::error::OAuthError;
use crate::oidc::{OPENID, UserInfo};

/// The claims for the token's user and scope.
pub fn userinfo(
    state: &AppState,
    req: &Request,
    auth: Option<Authorization>,
    now: u64,
) -> Result<UserInfo, OAuthError> {
    let Some(Authorization::Bearer(token)) = auth else {
        return Err(OAuthError::InvalidToken(
            "a Bearer access token is required".into(),
        ));
    };
    let invalid = || OAuthError::InvalidToken("the access token is not valid".into());
    let claims = state.active_access_token(&token, now).map_err(|reason| {
        tracing::debug!(%reason, "userinfo token refused");
        invalid()
    })?;
    if let Some(cnf) = &claims.cnf {
        let cert = crate::cert::from_request(req, state.cert_header.as_ref())?;
        crate::cert::check_binding(Some(&cnf.x5t_s256), cert.as_deref())
            .map_err(|e| OAuthError::InvalidToken(e.to_string().into()))?;
    }
    if !crate::scope::contains(&claims.scope, OPENID) {
        return Err(OAuthError::InsufficientScope(OPENID.into()));
    }
    let user = claims
        .username
        .as_deref()
        .and_then(|u| state.login.users.get(u))
        .ok_or_else(invalid)?;
    Ok(UserInfo::for_scope(user, &claims.scope))
}
