//! Unit tests of the grants, introspection and revocation as functions of
//! plain inputs (settings, revocation list, credentials, form, `now`): no
//! HTTP, no socket. The integration tests drive the same code over TLS.
//! This module holds the fixture; [`grants`] and [`introspection`] the
//! tests.

mod grants;
mod introspection;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::ClientParams;
use super::authorize::{Asked, CodeClaims};
use super::extract::{Authorization, ClientAuth};
use super::introspect::{self, IntrospectRequest};
use super::introspection_jwt::IntrospectionResponse;
use super::revoke::{self, RevokeRequest};
use super::token::{self, TokenBody, TokenRequest};
use crate::AppState;
use crate::cert::ClientCertificate;
use crate::config::Source;
use crate::error::OAuthError;
use crate::seal::Purpose;
use crate::settings::Settings;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://app.test/cb";
/// SHA-256 of "secret".
const SECRET_SHA256: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
const NOW: u64 = 2_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    settings: Arc<Settings>,
    cert: Arc<ClientCertificate>,
    /// Also pinned for `svc`: authenticates, but is not the one tokens
    /// were bound to.
    other_cert: Arc<ClientCertificate>,
    /// Pinned for nobody.
    stranger: Arc<ClientCertificate>,
}

fn self_signed(cn: &str) -> (Arc<ClientCertificate>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    (
        Arc::new(ClientCertificate::from_chain(chain).unwrap()),
        cert.pem(),
    )
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    crate::keys::generate_key(&dir.path().join("keys"), crate::keys::Alg::ES256, 1).unwrap();
    let (cert, pem) = self_signed("svc");
    let (other_cert, other_pem) = self_signed("other");
    let (stranger, _) = self_signed("stranger");
    let hash = crate::users::hash_password("pw").unwrap();
    let config = format!(
        r#"
issuer = "https://as.test"
[server]
https = ""
http = "127.0.0.1:0"
[keys]
dir = "{d}/keys"
[revocation]
file = "{d}/data/revocations.log"
[[clients]]
client_id = "svc"
token_endpoint_auth_method = "self_signed_tls_client_auth"
certificates = ["""{pem}""", """{other_pem}"""]
grant_types = ["client_credentials", "authorization_code", "refresh_token"]
scope = "openid read write"
redirect_uris = ["{REDIRECT}"]
[[clients]]
client_id = "rs"
token_endpoint_auth_method = "client_secret_basic"
client_secret_sha256 = "{SECRET_SHA256}"
introspection = true
[[clients]]
client_id = "peer"
token_endpoint_auth_method = "client_secret_post"
client_secret_sha256 = "{SECRET_SHA256}"
[[users]]
username = "alice"
password_hash = "{hash}"
"#
    );
    let path = dir.path().join("certbound.toml");
    std::fs::write(&path, config).unwrap();
    let state = AppState::open(Source::File(path)).unwrap();
    let settings = state.settings();
    Fixture {
        _dir: dir,
        state,
        settings,
        cert,
        other_cert,
        stranger,
    }
}

fn tls(cert: &Arc<ClientCertificate>) -> ClientAuth {
    ClientAuth::new(None, Ok(Some(cert.clone())))
}

fn basic(id: &str, secret: &str) -> ClientAuth {
    ClientAuth::new(
        Some(Authorization::Basic(id.into(), secret.into())),
        Ok(None),
    )
}

fn params(client_id: Option<&str>, secret: Option<&str>) -> ClientParams {
    ClientParams {
        client_id: client_id.map(String::from),
        client_secret: secret.map(String::from),
    }
}

fn request(grant: &str, pairs: &[(&str, &str)]) -> TokenRequest {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    TokenRequest {
        grant_type: grant.into(),
        client: params(
            get("client_id").as_deref().or(Some("svc")),
            get("client_secret").as_deref(),
        ),
        scope: get("scope"),
        code: get("code"),
        redirect_uri: get("redirect_uri"),
        code_verifier: get("code_verifier"),
        refresh_token: get("refresh_token"),
    }
}

impl Fixture {
    /// All tenants, as a request sees them.
    fn tenants(&self) -> crate::tenant::Tenants {
        crate::tenant::Tenants(self.settings.clone())
    }

    /// A client-credentials token of `svc` for `scope`, over its TLS
    /// certificate.
    async fn client_token(&self, scope: &str) -> TokenBody {
        let form = request("client_credentials", &[("scope", scope)]);
        self.token(&tls(&self.cert), &form, NOW).await.unwrap()
    }

    async fn token(
        &self,
        auth: &ClientAuth,
        form: &TokenRequest,
        now: u64,
    ) -> Result<TokenBody, OAuthError> {
        token::issue(&self.settings, &self.state.revocations, auth, form, now).await
    }

    fn active(&self, token: &str, now: u64) -> bool {
        introspect::inspect(&self.settings, &self.tenants(), &self.state, token, now)
            .unwrap()
            .active
    }

    /// The JSON answer's `active` (the form a repeated token's answer is
    /// kept in).
    fn active_json(&self, token: &str, now: u64) -> bool {
        let bytes =
            introspect::inspect_json(&self.settings, &self.tenants(), &self.state, token, now)
                .unwrap();
        let answer: introspect::Introspection = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            answer,
            self.answer(token, now),
            "the kept answer is the answer"
        );
        answer.active
    }

    fn answer(&self, token: &str, now: u64) -> introspect::Introspection {
        introspect::inspect(&self.settings, &self.tenants(), &self.state, token, now).unwrap()
    }

    fn code(&self, client_id: &str, expires: u64) -> String {
        let claims = CodeClaims {
            id: crate::seal::random_id().unwrap(),
            asked: Asked {
                client_id: client_id.into(),
                redirect_uri: REDIRECT.into(),
                redirect_given: true,
                scope: "openid read".into(),
                nonce: Some("n".into()),
                code_challenge: Some(CHALLENGE.into()),
            },
            username: "alice".into(),
            auth_time: NOW - 10,
            sid: "sid".into(),
            expires,
        };
        self.settings.sealer.seal(Purpose::Code, &claims).unwrap()
    }

    async fn redeem(&self, code: &str, verifier: &str, now: u64) -> Result<TokenBody, OAuthError> {
        let form = request(
            "authorization_code",
            &[
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        );
        self.token(&tls(&self.cert), &form, now).await
    }
}

fn code_of(r: Result<TokenBody, OAuthError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}
