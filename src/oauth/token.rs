//! The token endpoint's grants: client credentials (RFC 6749 §4.4),
//! authorization code (§4.1.3, with PKCE, RFC 7636 §4.6) and refresh token
//! (§6, rotated with reuse detection, RFC 9700 §4.14.2). Certificate-bound
//! refresh tokens need the same certificate (RFC 8705 §3).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem_openapi::Object;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ClientParams;
use super::authorize::CodeClaims;
use super::extract::ClientAuth;
use crate::clients::{Authenticated, GrantType};
use crate::error::OAuthError;
use crate::oidc::{IdGrant, OPENID};
use crate::revocation::{Kind, Outcome, Record, Revocations};
use crate::seal::Purpose;
use crate::settings::Settings;
use crate::token::{AccessGrant, RefreshGrant, TokenService};

/// Token request (RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Debug, Object, serde::Deserialize)]
pub struct TokenRequest {
    /// `client_credentials`, `authorization_code` or `refresh_token`.
    pub grant_type: String,
    /// Client credentials sent in the form.
    #[oai(flatten)]
    #[serde(flatten)]
    pub client: ClientParams,
    /// Space-separated scopes. `client_credentials`: omitted means every
    /// scope the client may have. `refresh_token`: omitted means the same
    /// scope; it may be narrowed, never widened.
    pub scope: Option<String>,
    /// `authorization_code`: the code from the redirect.
    pub code: Option<String>,
    /// `authorization_code`: the redirect URI, when the authorization
    /// request carried one.
    pub redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    pub refresh_token: Option<String>,
}

impl super::extract::FormFields for TokenRequest {
    const REQUIRED: &'static [&'static str] = &["grant_type"];
}

/// Token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Object, serde::Deserialize, serde::Serialize)]
pub struct TokenBody {
    /// An RFC 9068 JWT, bound to the client certificate by `cnf.x5t#S256`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Granted scope.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A refresh token (JWT of `typ` `rt+jwt`), when the client may use the
    /// `refresh_token` grant. Single use: each use returns a new one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An OpenID Connect ID token, when `openid` was granted.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Authenticates the client and runs the grant.
pub async fn issue(
    settings: &Settings,
    revocations: &Revocations,
    auth: &ClientAuth,
    form: &TokenRequest,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    let grant = GrantType::parse(&form.grant_type).ok_or_else(|| {
        OAuthError::UnsupportedGrantType(
            format!("grant_type {:?} is not supported", form.grant_type).into(),
        )
    })?;
    let client = settings
        .clients
        .authenticate(auth.credentials(&form.client)?, now)?;
    if !client.client.grant_types.contains(&grant) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use this grant type".into(),
        ));
    }
    let body = match grant {
        GrantType::ClientCredentials => client_credentials(settings, &client, form, now),
        GrantType::AuthorizationCode => {
            authorization_code(settings, revocations, &client, form, now).await
        }
        GrantType::RefreshToken => refresh(settings, revocations, &client, form, now).await,
    }?;
    crate::metrics::token_issued(grant.name(), &client.client.id);
    Ok(body)
}

/// RFC 6749 §4.4: a token for the client itself, with the requested scope
/// (or all of the client's) if the client may have it.
pub fn client_credentials(
    settings: &Settings,
    client: &Authenticated,
    form: &TokenRequest,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    // With no scope asked for, the client's own scopes: the OpenID Connect
    // ones are about a signed-in user, so not those. Asked for by name
    // they are granted, as WSO2 does (`scope=openid` in its samples).
    let scope = match form.scope.as_deref() {
        Some(_) => crate::scope::grant(form.scope.as_deref(), &client.client.scopes)?,
        None => client
            .client
            .scopes
            .iter()
            .filter(|s| !crate::scope::USER_SCOPES.contains(&s.as_str()))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    };
    let access_token = settings.tokens.mint(
        &settings.keys,
        AccessGrant {
            sub: &client.client.id,
            client_id: &client.client.id,
            scope: &scope,
            binding: client.binding(),
            username: client.client.owner.as_deref(),
            fid: None,
            auth_time: None,
        },
        now,
    )?;
    Ok(TokenBody {
        access_token,
        token_type: "Bearer".into(),
        expires_in: settings.tokens.lifetime,
        scope: (!scope.is_empty()).then_some(scope),
        refresh_token: None,
        id_token: None,
    })
}

/// RFC 6749 §4.1.3. The code is checked completely before it is spent;
/// spending it records its id, and a second redemption revokes every token
/// minted from the first (§4.1.2, "SHOULD revoke").
pub async fn authorization_code(
    settings: &Settings,
    revocations: &Revocations,
    client: &Authenticated,
    form: &TokenRequest,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    let code = form
        .code
        .as_deref()
        .ok_or_else(|| OAuthError::InvalidRequest("code is missing".into()))?;
    let claims: CodeClaims = settings
        .sealer
        .open(Purpose::Code, code)
        .ok_or_else(|| OAuthError::InvalidGrant("the authorization code is not valid".into()))?;
    if claims.expires <= now {
        return Err(OAuthError::InvalidGrant(
            "the authorization code has expired".into(),
        ));
    }
    if claims.asked.client_id != client.client.id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client".into(),
        ));
    }
    let redirect_ok = match form.redirect_uri.as_deref() {
        Some(uri) => uri == claims.asked.redirect_uri,
        None => !claims.asked.redirect_given,
    };
    if !redirect_ok {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request".into(),
        ));
    }
    check_pkce(
        claims.asked.code_challenge.as_deref(),
        form.code_verifier.as_deref(),
    )?;
    let user = settings
        .users
        .get(&claims.username)
        .ok_or_else(|| OAuthError::InvalidGrant("the user no longer exists".into()))?;
    // A code made before its client's or user's revoke-all (or for a
    // sign-in before the user's) is revoked with them.
    let issued = claims
        .expires
        .saturating_sub(settings.config.tokens.code_lifetime);
    if revocations
        .not_before(
            &settings.tokens.issuer,
            Some(&client.client.id),
            Some(&claims.username),
        )?
        .revokes(issued, Some(claims.auth_time))
    {
        return Err(OAuthError::InvalidGrant(
            "the authorization code is revoked".into(),
        ));
    }
    let spent = Record::new(Kind::Code, &claims.id, claims.expires)
        .ok_or_else(|| OAuthError::internal("code id is not a valid list identifier"))?;
    if revocations.record(spent).await? == Outcome::AlreadyRecorded {
        revoke_family(&settings.tokens, revocations, &claims.id, now).await?;
        tracing::warn!(client_id = %client.client.id, "authorization code replayed: its token family is revoked");
        return Err(OAuthError::InvalidGrant(
            "the authorization code was already used; tokens issued with it are revoked".into(),
        ));
    }
    user_tokens(
        settings,
        client,
        UserGrant {
            username: &user.username,
            scope: &claims.asked.scope,
            fid: &claims.id,
            auth_time: claims.auth_time,
            sid: &claims.sid,
            nonce: claims.asked.nonce.as_deref(),
            code: Some(code),
        },
        now,
    )
}

/// RFC 7636 §4.6: S256 only. A verifier without a challenge is refused too
/// (RFC 9700 §2.1.1).
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    let refused = |why: &'static str| Err(OAuthError::InvalidGrant(why.into()));
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            refused("code_verifier sent, but the authorization request had no code_challenge")
        }
        (Some(_), None) => refused("code_verifier is missing"),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                refused("code_verifier does not match the code_challenge")
            }
        }
    }
}

/// RFC 6749 §6 with rotation: the old token's `jti` is recorded, durably,
/// before new tokens are returned. A token already recorded is a replay: the
/// family is revoked.
pub async fn refresh(
    settings: &Settings,
    revocations: &Revocations,
    client: &Authenticated,
    form: &TokenRequest,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    let token = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is missing".into()))?;
    let invalid = || OAuthError::InvalidGrant("the refresh token is not valid".into());
    let claims = settings
        .tokens
        .verify_refresh(&settings.keys, token, now)
        .map_err(|reason| {
            tracing::debug!(%reason, "refresh token refused");
            invalid()
        })?;
    if claims.client_id != client.client.id {
        return Err(OAuthError::InvalidGrant(
            "the refresh token was issued to another client".into(),
        ));
    }
    let revoked_before = revocations
        .not_before(
            &settings.tokens.issuer,
            Some(&claims.client_id),
            Some(&claims.sub),
        )?
        .revokes(claims.iat, Some(claims.auth_time));
    if revoked_before || revocations.contains(Kind::Family, &claims.fid)? {
        return Err(OAuthError::InvalidGrant(
            "the refresh token is revoked".into(),
        ));
    }
    crate::cert::check_binding(claims.cnf.as_ref(), client.certificate.as_deref())
        .map_err(|e| OAuthError::InvalidGrant(e.to_string().into()))?;
    let scope = match form.scope.as_deref() {
        None => claims.scope.clone(),
        Some(requested) => {
            let allowed: Vec<String> = claims.scope.split(' ').map(String::from).collect();
            crate::scope::grant(Some(requested), &allowed).map_err(|_| {
                OAuthError::InvalidScope("scope may be narrowed, never widened".into())
            })?
        }
    };
    let user = settings.users.get(&claims.sub).ok_or_else(invalid)?;
    let used = Record::new(Kind::Jti, &claims.jti, claims.exp)
        .ok_or_else(|| OAuthError::internal("refresh jti is not a valid list identifier"))?;
    if revocations.contains(Kind::Jti, &claims.jti)?
        || revocations.record(used).await? == Outcome::AlreadyRecorded
    {
        revoke_family(&settings.tokens, revocations, &claims.fid, now).await?;
        tracing::warn!(client_id = %client.client.id, "refresh token reused: its token family is revoked");
        return Err(OAuthError::InvalidGrant(
            "the refresh token was already used; its token family is revoked".into(),
        ));
    }
    user_tokens(
        settings,
        client,
        UserGrant {
            username: &user.username,
            scope: &scope,
            fid: &claims.fid,
            auth_time: claims.auth_time,
            sid: &claims.sid,
            nonce: None,
            code: None,
        },
        now,
    )
}

/// Revokes a token family: every access and refresh token carrying `fid`.
/// The entry outlives any token of the family issued before now.
pub async fn revoke_family(
    tokens: &TokenService,
    revocations: &Revocations,
    fid: &str,
    now: u64,
) -> Result<(), OAuthError> {
    let until = now + tokens.lifetime.max(tokens.refresh_lifetime);
    let record = Record::new(Kind::Family, fid, until)
        .ok_or_else(|| OAuthError::internal("family id is not a valid list identifier"))?;
    revocations.record(record).await?;
    Ok(())
}

/// What the tokens of a user grant carry.
struct UserGrant<'a> {
    username: &'a str,
    scope: &'a str,
    fid: &'a str,
    auth_time: u64,
    sid: &'a str,
    nonce: Option<&'a str>,
    code: Option<&'a str>,
}

/// The access token, refresh token (if the client may refresh) and ID token
/// (if `openid` is granted) of a user grant.
fn user_tokens(
    settings: &Settings,
    client: &Authenticated,
    grant: UserGrant<'_>,
    now: u64,
) -> Result<TokenBody, OAuthError> {
    let client_id = client.client.id.as_str();
    // A user's tokens never carry the introspection scope, whatever an older
    // refresh token says (the authorization endpoint never grants it).
    let scope = crate::scope::without(grant.scope, &settings.config.tokens.introspection_scope);
    let grant = UserGrant {
        scope: &scope,
        ..grant
    };
    let access_token = settings.tokens.mint(
        &settings.keys,
        AccessGrant {
            sub: grant.username,
            client_id,
            scope: grant.scope,
            binding: client.binding(),
            username: Some(grant.username),
            fid: Some(grant.fid),
            auth_time: Some(grant.auth_time),
        },
        now,
    )?;
    let refresh_token = if client.client.grant_types.contains(&GrantType::RefreshToken) {
        Some(settings.tokens.mint_refresh(
            &settings.keys,
            RefreshGrant {
                username: grant.username,
                client_id,
                scope: grant.scope,
                binding: client.certificate.as_deref().map(|c| c.thumbprint.as_str()),
                fid: grant.fid,
                auth_time: grant.auth_time,
                sid: grant.sid,
            },
            now,
        )?)
    } else {
        None
    };
    let id_token = if crate::scope::contains(grant.scope, OPENID) {
        Some(crate::oidc::mint_id_token(
            &settings.keys,
            &settings.tokens.issuer,
            settings.config.tokens.id_token_lifetime,
            IdGrant {
                username: grant.username,
                client_id,
                nonce: grant.nonce,
                auth_time: grant.auth_time,
                sid: grant.sid,
                access_token: &access_token,
                code: grant.code,
            },
            now,
        )?)
    } else {
        None
    };
    Ok(TokenBody {
        access_token,
        token_type: "Bearer".into(),
        expires_in: settings.tokens.lifetime,
        scope: (!grant.scope.is_empty()).then(|| grant.scope.to_string()),
        refresh_token,
        id_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(check_pkce(Some(challenge), Some(&verifier.replace('d', "e"))).is_err());
        assert!(check_pkce(Some(challenge), None).is_err());
        assert!(check_pkce(None, Some(verifier)).is_err());
        assert!(check_pkce(None, None).is_ok());
        assert!(check_pkce(Some(challenge), Some("short")).is_err());
    }
}
