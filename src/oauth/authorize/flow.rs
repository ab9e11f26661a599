//! What happens next in the authorization flow, decided from plain values
//! (no request, no clock of its own): show the login page, show the consent
//! page, issue a code, or refuse (OIDC Core §3.1.2.3–§3.1.2.6).

use super::AuthorizeError;
use super::request::{Pending, Valid};
use crate::error::OAuthError;
use crate::login::{Consent, Session};

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Show the login page.
    Login,
    /// Show the consent page to the logged-in user.
    Consent,
    /// Redirect to the client with a code.
    IssueCode,
    /// Redirect to the client with this error.
    Refuse(OAuthError),
}

/// What the user chose on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Refused: `access_denied`.
    Deny,
    /// Approved for this request.
    ApproveOnce,
    /// Approved, and remembered in a consent cookie.
    ApproveAlways,
    /// "Not you?": signed out, back to the login form.
    SwitchUser,
}

/// The step after a valid authorization request. `session` is the
/// browser's session if it is valid at `now`; `consented` whether an
/// "Approve always" decision covers the request.
pub fn on_request(valid: &Valid, session: Option<&Session>, consented: bool, now: u64) -> Next {
    let prompt = valid.prompt;
    let session = session.filter(|_| !prompt.login).filter(|s| {
        prompt
            .max_age
            .is_none_or(|m| now.saturating_sub(s.auth_time) <= m)
    });
    match session {
        Some(_) if prompt.none && !consented => {
            Next::Refuse(OAuthError::ConsentRequired("consent is needed".into()))
        }
        Some(_) => after_login(consented),
        None if prompt.none => Next::Refuse(OAuthError::LoginRequired(
            "the user is not logged in".into(),
        )),
        None => Next::Login,
    }
}

/// A logged-in user goes straight to the client when "Approve always"
/// covers the request, else to the consent page.
pub fn after_login(consented: bool) -> Next {
    if consented {
        Next::IssueCode
    } else {
        Next::Consent
    }
}

/// Whether `consent` (an "Approve always" decision) covers every scope of
/// `pending` for `username` at `now`; never with `prompt=consent`.
pub fn consent_covers(consent: &Consent, pending: &Pending, username: &str, now: u64) -> bool {
    !pending.prompt_consent
        && consent.username == username
        && consent.client_id == pending.asked.client_id
        && consent.expires > now
        && pending
            .asked
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .all(|s| crate::scope::contains(&consent.scope, s))
}

/// The consent form's `decision`.
pub fn decision(value: Option<&str>) -> Result<Decision, AuthorizeError> {
    match value {
        Some("deny") => Ok(Decision::Deny),
        Some("approve_once") => Ok(Decision::ApproveOnce),
        Some("approve_always") => Ok(Decision::ApproveAlways),
        Some("switch_user") => Ok(Decision::SwitchUser),
        _ => Err(AuthorizeError::Shown(OAuthError::InvalidRequest(
            "Choose approve or deny.".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::authorize::request::{Asked, Prompt};

    fn valid(prompt: Prompt, prompt_consent: bool) -> Valid {
        Valid {
            pending: Pending {
                asked: Asked {
                    client_id: "web".into(),
                    redirect_uri: "https://app/cb".into(),
                    redirect_given: true,
                    scope: "openid read".into(),
                    nonce: None,
                    code_challenge: None,
                },
                state: None,
                prompt_consent,
                shown_to: None,
                csrf: String::new(),
                expires: 1000,
            },
            prompt,
        }
    }

    fn session(auth_time: u64) -> Session {
        Session {
            username: "alice".into(),
            auth_time,
            sid: "s".into(),
            expires: 10_000,
        }
    }

    #[test]
    fn the_next_step_follows_session_consent_and_prompt() {
        let plain = valid(Prompt::default(), false);
        assert_eq!(on_request(&plain, None, false, 100), Next::Login);
        assert_eq!(
            on_request(&plain, Some(&session(50)), false, 100),
            Next::Consent
        );
        assert_eq!(
            on_request(&plain, Some(&session(50)), true, 100),
            Next::IssueCode
        );
        let login = valid(
            Prompt {
                login: true,
                ..Prompt::default()
            },
            false,
        );
        assert_eq!(
            on_request(&login, Some(&session(50)), true, 100),
            Next::Login
        );
        let aged = valid(
            Prompt {
                max_age: Some(30),
                ..Prompt::default()
            },
            false,
        );
        assert_eq!(
            on_request(&aged, Some(&session(50)), true, 100),
            Next::Login
        );
        assert_eq!(
            on_request(&aged, Some(&session(80)), true, 100),
            Next::IssueCode
        );
        let none = valid(
            Prompt {
                none: true,
                ..Prompt::default()
            },
            false,
        );
        assert!(matches!(
            on_request(&none, None, true, 100),
            Next::Refuse(OAuthError::LoginRequired(_))
        ));
        assert!(matches!(
            on_request(&none, Some(&session(50)), false, 100),
            Next::Refuse(OAuthError::ConsentRequired(_))
        ));
        assert_eq!(
            on_request(&none, Some(&session(50)), true, 100),
            Next::IssueCode
        );
    }

    #[test]
    fn a_consent_covers_only_its_user_client_scopes_and_time() {
        let pending = valid(Prompt::default(), false).pending;
        let consent = Consent {
            username: "alice".into(),
            client_id: "web".into(),
            scope: "openid read email".into(),
            expires: 500,
        };
        assert!(consent_covers(&consent, &pending, "alice", 100));
        assert!(!consent_covers(&consent, &pending, "bob", 100));
        assert!(!consent_covers(&consent, &pending, "alice", 500), "expired");
        let narrower = Consent {
            scope: "openid".into(),
            ..consent.clone()
        };
        assert!(!consent_covers(&narrower, &pending, "alice", 100));
        let other = Consent {
            client_id: "other".into(),
            ..consent.clone()
        };
        assert!(!consent_covers(&other, &pending, "alice", 100));
        let asked_again = valid(Prompt::default(), true).pending;
        assert!(
            !consent_covers(&consent, &asked_again, "alice", 100),
            "prompt=consent"
        );
        assert_eq!(decision(Some("deny")).ok(), Some(Decision::Deny));
        assert!(decision(Some("maybe")).is_err());
    }
}
