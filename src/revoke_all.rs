//! Revoking by operator: every token of a client, every token of a user,
//! or one token by its `jti`, each with one record on the revocation list
//! and acknowledged only once that record is durable (RFC 7009 §2 leaves
//! revocation beyond the endpoint to the server; RFC 9068 §5: resource
//! servers that introspect see it at once).
//!
//! A client or user record holds a "not before" time: the tokens of that
//! client or user (refresh tokens included) with `iat` at or before it are
//! revoked. Tokens issued in the same second are revoked too (`iat` has
//! whole seconds). The record lasts as long as the longest token lifetime
//! configured when it is made. Reached through the control socket
//! (`certbound revoke`) and the admin listener (`POST /admin/revoke`).

use crate::AppState;
use crate::revocation::{Kind, Record, RevocationError};
use crate::settings::Settings;

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every token of this client issued until now.
    Client(String),
    /// Every token of this user issued until now.
    User(String),
    /// The token with this `jti`.
    Jti(String),
}

impl Target {
    /// `client`, `user` or `jti`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::User(_) => "user",
            Self::Jti(_) => "jti",
        }
    }

    /// The client id, username or jti.
    pub fn name(&self) -> &str {
        match self {
            Self::Client(n) | Self::User(n) | Self::Jti(n) => n,
        }
    }

    /// The target of `kind` (as [`Self::kind`] names it) and `name`.
    pub fn parse(kind: &str, name: &str) -> Option<Self> {
        let name = name.to_string();
        match kind {
            "client" => Some(Self::Client(name)),
            "user" => Some(Self::User(name)),
            "jti" => Some(Self::Jti(name)),
            _ => None,
        }
    }
}

/// A revocation made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// Tokens with `iat` at or before this are revoked (client and user).
    pub not_after: Option<u64>,
    /// What was revoked, in words.
    pub summary: String,
}

/// Why nothing was revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No such tenant.
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    /// No such client in the tenant.
    #[error("no client {0:?} in tenant {1:?}")]
    UnknownClient(String, String),
    /// No such user in the tenant.
    #[error("no user {0:?} in tenant {1:?}")]
    UnknownUser(String, String),
    /// Not a token id a record can hold.
    #[error("{0:?} is not a jti (1 to 128 visible ASCII characters)")]
    BadJti(String),
    /// The record could not be made durable: nothing was revoked.
    #[error("{0}; nothing was revoked")]
    List(#[from] RevocationError),
}

/// The settings of `tenant` (its domain; `None`: the default tenant).
pub fn tenant<'a>(settings: &'a Settings, tenant: Option<&str>) -> Result<&'a Settings, Refused> {
    match tenant {
        None => Ok(settings),
        Some(d) if d == settings.domain => Ok(settings),
        Some(d) => settings
            .tenants
            .get(d)
            .map(|t| &**t)
            .ok_or_else(|| Refused::UnknownTenant(d.to_string())),
    }
}

/// Revokes `target` in `settings`' tenant at `now`; returns once the
/// record is durable.
pub async fn revoke(
    state: &AppState,
    settings: &Settings,
    target: &Target,
    now: u64,
) -> Result<Revoked, Refused> {
    let lasts = settings.config.longest_token_lifetime();
    let issuer = settings.tokens.issuer.as_str();
    let domain = settings.domain.as_str();
    let record = match target {
        Target::Client(id) => {
            if settings.clients.get(id).is_none() {
                return Err(Refused::UnknownClient(id.clone(), domain.into()));
            }
            Record::not_before(Kind::Client, issuer, id, now, now.saturating_add(lasts))
        }
        Target::User(name) => {
            if settings.users.get(name).is_none() {
                return Err(Refused::UnknownUser(name.clone(), domain.into()));
            }
            Record::not_before(Kind::User, issuer, name, now, now.saturating_add(lasts))
        }
        Target::Jti(jti) => Record::new(Kind::Jti, jti, now.saturating_add(lasts))
            .ok_or_else(|| Refused::BadJti(jti.clone()))?,
    };
    state.revocations.record(record).await?;
    let summary = match target {
        Target::Jti(jti) => format!("revoked the token with jti {jti}"),
        _ => format!(
            "revoked every token of {} {} issued at or before {} ({now})",
            target.kind(),
            target.name(),
            crate::commands::keys::rfc3339(now)
        ),
    };
    tracing::info!(
        kind = target.kind(),
        name = target.name(),
        tenant = domain,
        not_after = (!matches!(target, Target::Jti(_))).then_some(now),
        "revoked by an operator"
    );
    Ok(Revoked {
        not_after: (!matches!(target, Target::Jti(_))).then_some(now),
        summary,
    })
}
