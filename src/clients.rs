//! Registered clients and client authentication: RFC 8705 §2.1
//! (`tls_client_auth`), §2.2 (`self_signed_tls_client_auth`) and RFC 6749
//! §2.3.1 (`client_secret_basic`, `client_secret_post`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cert::ClientCertificate;
use crate::cert::matching::{Subject, TrustAnchors};
use crate::config::{ClientConfig, Problems};
use crate::error::OAuthError;

/// Grant types (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// §4.4
    ClientCredentials,
    /// §4.1
    AuthorizationCode,
    /// §6
    RefreshToken,
}

impl GrantType {
    /// Every grant type.
    pub const ALL: [Self; 3] = [
        Self::ClientCredentials,
        Self::AuthorizationCode,
        Self::RefreshToken,
    ];

    /// Parses the `grant_type` wire value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }

    /// The `grant_type` wire value.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// RFC 8705 §2.2: the leaf must be one of these (by `x5t#S256`).
    SelfSigned {
        /// Thumbprints of the pinned certificates.
        thumbprints: Vec<String>,
    },
    /// RFC 8705 §2.1: chain to a trust anchor, and this subject.
    Tls {
        /// The registered subject.
        subject: Subject,
        /// The client's own anchors (`tls_client_auth_trust_anchors`);
        /// `None`: the shared `mtls.trust_anchors`.
        anchors: Option<TrustAnchors>,
    },
    /// RFC 6749 §2.3.1, HTTP Basic.
    SecretBasic {
        /// SHA-256 of the secret.
        hash: [u8; 32],
    },
    /// RFC 6749 §2.3.1, form parameters.
    SecretPost {
        /// SHA-256 of the secret.
        hash: [u8; 32],
    },
}

impl AuthMethod {
    /// The RFC 7591 `token_endpoint_auth_method` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SelfSigned { .. } => "self_signed_tls_client_auth",
            Self::Tls { .. } => "tls_client_auth",
            Self::SecretBasic { .. } => "client_secret_basic",
            Self::SecretPost { .. } => "client_secret_post",
        }
    }
}

/// Every method name, as published in discovery.
pub const AUTH_METHODS: [&str; 4] = [
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "client_secret_basic",
    "client_secret_post",
];

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`
    pub id: String,
    /// `token_endpoint_auth_method` and its parameters.
    pub method: AuthMethod,
    /// Allowed grant types.
    pub grant_types: Vec<GrantType>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// `tls_client_certificate_bound_access_tokens`
    pub bind_tokens: bool,
    /// May call the introspection endpoint with its own credentials.
    pub introspection: bool,
    /// Shown on the consent page.
    pub name: String,
    /// Exact redirect URIs (RFC 9700 §2.1).
    pub redirect_uris: Vec<String>,
    /// PKCE (S256) required at the authorization endpoint.
    pub require_pkce: bool,
    /// The user client-credentials tokens act for, if any.
    pub owner: Option<String>,
    /// How introspection names its users in `app_configured` mode.
    pub local_subject: crate::subject::LocalSubject,
}

/// Credentials found in a request.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    /// From `Authorization: Basic`, already decoded.
    pub basic: Option<(&'a str, &'a str)>,
    /// The `client_id` form parameter.
    pub client_id: Option<&'a str>,
    /// The `client_secret` form parameter.
    pub client_secret: Option<&'a str>,
    /// The client certificate, from TLS or a trusted proxy.
    pub certificate: Option<Arc<ClientCertificate>>,
    /// A certificate header came, and was not believed (not from a trusted
    /// proxy, or on a listener not facing one).
    pub header_ignored: bool,
}

/// A client that proved who it is.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The client.
    pub client: Arc<Client>,
    /// The certificate it authenticated with, if a certificate method.
    pub certificate: Option<Arc<ClientCertificate>>,
}

impl Authenticated {
    /// `cnf.x5t#S256` for tokens issued to this client (RFC 8705 §3).
    pub fn binding(&self) -> Option<&str> {
        self.certificate
            .as_deref()
            .filter(|_| self.client.bind_tokens)
            .map(|c| c.thumbprint.as_str())
    }
}

/// The client registry.
#[derive(Debug, Default)]
pub struct Clients {
    by_id: HashMap<String, Arc<Client>>,
    trust: Option<TrustAnchors>,
}

impl Clients {
    /// Builds the registry; an inconsistent client is an error naming it.
    /// `allow_missing_eku` applies to the clients' own anchors as it does
    /// to `trust`.
    pub fn new(
        configs: &[ClientConfig],
        trust: Option<TrustAnchors>,
        base_dir: &Path,
        allow_missing_eku: bool,
    ) -> Result<Self, String> {
        let configured = trust.is_some();
        Self::checked(configs, trust, configured, base_dir, allow_missing_eku)
            .map_err(|p| p.to_string())
    }

    /// As [`Self::new`], reporting every bad client, each as
    /// `clients[i] (client "id"): …`. `trust_configured`: shared trust
    /// anchors are configured (even if they could not be read, which is
    /// reported once, not again for every client that needs them).
    pub fn checked(
        configs: &[ClientConfig],
        trust: Option<TrustAnchors>,
        trust_configured: bool,
        base_dir: &Path,
        allow_missing_eku: bool,
    ) -> Result<Self, Problems> {
        let mut by_id = HashMap::new();
        let mut problems = Problems::default();
        for (i, c) in configs.iter().enumerate() {
            let name = format!("clients[{i}] (client {:?})", c.client_id);
            match build(c, base_dir, trust_configured, allow_missing_eku) {
                Ok(client) => {
                    if by_id
                        .insert(c.client_id.clone(), Arc::new(client))
                        .is_some()
                    {
                        problems.push(format!(
                            "{name}: client {:?} is registered twice",
                            c.client_id
                        ));
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        problems.or(Self { by_id, trust })
    }

    /// A client by id.
    pub fn get(&self, id: &str) -> Option<&Arc<Client>> {
        self.by_id.get(id)
    }

    /// Every client.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.by_id.values()
    }

    /// Authenticates the client of a request at `now` (Unix seconds).
    /// Every failure is `invalid_client`, without saying which part failed;
    /// using two methods at once is `invalid_request` (RFC 6749 §2.3).
    pub fn authenticate(
        &self,
        creds: Credentials<'_>,
        now: u64,
    ) -> Result<Authenticated, OAuthError> {
        if creds.basic.is_some() && creds.client_secret.is_some() {
            return Err(OAuthError::InvalidRequest(
                "more than one client authentication method".into(),
            ));
        }
        let id = match (creds.basic, creds.client_id) {
            (Some((basic_id, _)), Some(form_id)) if basic_id != form_id => {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the Authorization header".into(),
                ));
            }
            (Some((basic_id, _)), _) => basic_id,
            (None, Some(form_id)) => form_id,
            (None, None) => return Err(Refusal::NoCredentials.refuse(None)),
        };
        let Some(client) = self.by_id.get(id) else {
            return Err(Refusal::UnknownClient.refuse(Some(id)));
        };
        if let Err(refusal) = self.check(client, &creds, now) {
            return Err(refusal.refuse(Some(id)));
        }
        crate::server::access::note_client(&client.id);
        let certificate = match client.method {
            AuthMethod::SelfSigned { .. } | AuthMethod::Tls { .. } => creds.certificate,
            _ => None,
        };
        Ok(Authenticated {
            client: client.clone(),
            certificate,
        })
    }
}

impl Clients {
    /// Whether `creds` prove `client`'s identity by its method at `now`.
    fn check(&self, client: &Client, creds: &Credentials<'_>, now: u64) -> Result<(), Refusal> {
        let cert = creds.certificate.as_deref();
        let no_certificate = || {
            if creds.header_ignored {
                Refusal::UntrustedProxyHeader
            } else {
                Refusal::NoCertificate
            }
        };
        match &client.method {
            AuthMethod::SecretBasic { hash } => match creds.basic {
                Some((_, secret)) if secret_matches(secret, hash) => Ok(()),
                Some(_) => Err(Refusal::BadSecret),
                None if creds.client_secret.is_some() => Err(Refusal::WrongMethod),
                None => Err(Refusal::BadSecret),
            },
            AuthMethod::SecretPost { hash } => match (creds.basic, creds.client_secret) {
                (Some(_), _) => Err(Refusal::WrongMethod),
                (None, Some(s)) if secret_matches(s, hash) => Ok(()),
                (None, _) => Err(Refusal::BadSecret),
            },
            AuthMethod::SelfSigned { thumbprints } => match (creds.basic, cert) {
                (Some(_), _) => Err(Refusal::WrongMethod),
                (None, None) => Err(no_certificate()),
                (None, Some(c)) if thumbprints.contains(&c.thumbprint) => Ok(()),
                (None, Some(_)) => Err(Refusal::CertificateNotRegistered),
            },
            AuthMethod::Tls { subject, anchors } => {
                let c = match (creds.basic, cert) {
                    (Some(_), _) => return Err(Refusal::WrongMethod),
                    (None, None) => return Err(no_certificate()),
                    (None, Some(c)) => c,
                };
                let trust = anchors.as_ref().or(self.trust.as_ref());
                match trust.map(|t| t.verify(c, now)) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        tracing::debug!(client_id = %client.id, error = %e, "client certificate chain rejected");
                        return Err(Refusal::UntrustedChain);
                    }
                    None => return Err(Refusal::UntrustedChain),
                }
                if c.identity().is_some_and(|id| subject.matches(id)) {
                    Ok(())
                } else {
                    Err(Refusal::SubjectMismatch)
                }
            }
        }
    }
}

/// Constant-time comparison of SHA-256(secret) with the stored hash.
fn secret_matches(secret: &str, hash: &[u8; 32]) -> bool {
    Sha256::digest(secret.as_bytes()).ct_eq(hash).into()
}

fn build(
    c: &ClientConfig,
    base_dir: &Path,
    have_trust: bool,
    allow_missing_eku: bool,
) -> Result<Client, String> {
    if c.client_id.is_empty() {
        return Err("client_id is empty".into());
    }
    let subjects = entry::subjects(c)?;
    let has_pins = !c.certificates.is_empty() || c.jwks.is_some();
    if c.tls_client_auth_trust_anchors.is_some()
        && c.token_endpoint_auth_method != "tls_client_auth"
    {
        return Err("tls_client_auth_trust_anchors is for tls_client_auth only".into());
    }
    let method = match c.token_endpoint_auth_method.as_str() {
        "tls_client_auth" => {
            if has_pins || c.client_secret_sha256.is_some() {
                return Err("tls_client_auth takes a subject, not certificates or a secret".into());
            }
            let anchors = match &c.tls_client_auth_trust_anchors {
                Some(file) => {
                    let path = base_dir.join(file);
                    Some(
                        TrustAnchors::new(
                            crate::cert::read_pem_certificates(&path)?,
                            allow_missing_eku,
                        )
                        .map_err(|e| {
                            format!("tls_client_auth_trust_anchors {}: {e}", path.display())
                        })?,
                    )
                }
                None if have_trust => None,
                None => {
                    return Err(
                        "tls_client_auth needs mtls.trust_anchors or tls_client_auth_trust_anchors"
                            .into(),
                    );
                }
            };
            let mut subjects = subjects;
            match (subjects.pop(), subjects.is_empty()) {
                (Some(subject), true) => AuthMethod::Tls { subject, anchors },
                (None, _) => {
                    return Err(
                        "tls_client_auth needs one tls_client_auth_subject_dn or _san_* value"
                            .into(),
                    );
                }
                (Some(_), false) => {
                    return Err("tls_client_auth takes exactly one subject, several are set".into());
                }
            }
        }
        "self_signed_tls_client_auth" => {
            if !subjects.is_empty() || c.client_secret_sha256.is_some() {
                return Err("self_signed_tls_client_auth takes certificates or jwks only".into());
            }
            let thumbprints = entry::pinned_thumbprints(c, base_dir)?;
            if thumbprints.is_empty() {
                return Err("self_signed_tls_client_auth needs certificates or jwks".into());
            }
            AuthMethod::SelfSigned { thumbprints }
        }
        m @ ("client_secret_basic" | "client_secret_post") => {
            if !subjects.is_empty() || has_pins {
                return Err(format!("{m} takes client_secret_sha256 only"));
            }
            let hex_hash = c
                .client_secret_sha256
                .as_deref()
                .ok_or_else(|| format!("{m} needs client_secret_sha256"))?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex_hash.trim(), &mut hash)
                .map_err(|_| "client_secret_sha256 must be 64 hex characters".to_string())?;
            if m == "client_secret_basic" {
                AuthMethod::SecretBasic { hash }
            } else {
                AuthMethod::SecretPost { hash }
            }
        }
        other => return Err(format!("unknown token_endpoint_auth_method {other:?}")),
    };
    let grant_types = match &c.grant_types {
        None => vec![GrantType::ClientCredentials],
        Some(list) => list
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| format!("unknown grant type {g:?}")))
            .collect::<Result<_, _>>()?,
    };
    let scopes = crate::scope::parse(&c.scope)
        .map_err(|_| "scope has a character outside RFC 6749 §3.3".to_string())?
        .into_iter()
        .map(String::from)
        .collect();
    let redirect_uris = c
        .redirect_uris
        .iter()
        .map(|uri| entry::check_redirect_uri(uri).map(|()| uri.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err("the authorization_code grant needs redirect_uris".into());
    }
    Ok(Client {
        name: c.client_name.clone().unwrap_or_else(|| c.client_id.clone()),
        redirect_uris,
        require_pkce: c.require_pkce.unwrap_or(true),
        owner: c.owner.clone(),
        local_subject: crate::subject::LocalSubject {
            tenant_domain: c.use_tenant_domain_in_local_subject_identifier,
            user_store_domain: c.use_user_store_domain_in_local_subject_identifier,
        },
        id: c.client_id.clone(),
        method,
        grant_types,
        scopes,
        bind_tokens: c.tls_client_certificate_bound_access_tokens.unwrap_or(true),
        introspection: c.introspection,
    })
}

#[path = "clients/entry.rs"]
mod entry;
mod refusal;
pub use refusal::Refusal;

#[cfg(test)]
#[path = "clients/tests.rs"]
mod tests;
