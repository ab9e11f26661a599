//! Unit tests of the grants, introspection and revocation as functions of
//! plain inputs (settings, revocation list, credentials, form, `now`): no
//! HTTP, no socket. The integration tests drive the same code over TLS.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::ClientParams;
use super::authorize::{Asked, CodeClaims};
use super::extract::{Authorization, ClientAuth};
use super::introspect::{self, IntrospectRequest};
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
        introspect::inspect(&self.settings, &self.state, token, now)
            .unwrap()
            .active
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

#[tokio::test]
async fn client_credentials_binds_narrows_and_refuses() {
    let f = fixture();
    let body = f.client_token("read").await;
    assert_eq!(body.scope.as_deref(), Some("read"));
    let claims = f
        .settings
        .tokens
        .verify(&f.settings.keys, &body.access_token, NOW)
        .unwrap();
    assert_eq!(
        claims.cnf.unwrap().x5t_s256,
        f.cert.thumbprint,
        "bound to the certificate"
    );
    assert_eq!(claims.exp, NOW + 3600);
    // Scope beyond the client's, another certificate, a grant not allowed,
    // an unknown grant, a Bearer header as client authentication.
    let wide = request("client_credentials", &[("scope", "admin")]);
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &wide, NOW).await),
        "invalid_scope"
    );
    let plain = request("client_credentials", &[]);
    assert_eq!(
        code_of(f.token(&tls(&f.stranger), &plain, NOW).await),
        "invalid_client"
    );
    let rs_code = request("authorization_code", &[("client_id", "rs")]);
    assert_eq!(
        code_of(f.token(&basic("rs", "secret"), &rs_code, NOW).await),
        "unauthorized_client"
    );
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &request("password", &[]), NOW).await),
        "unsupported_grant_type"
    );
    let bearer = ClientAuth::new(Some(Authorization::Bearer("t".into())), Ok(None));
    assert_eq!(
        code_of(f.token(&bearer, &plain, NOW).await),
        "invalid_client"
    );
    // A bad certificate header surfaces when the certificate is needed.
    let bad = ClientAuth::new(
        None,
        Err(OAuthError::InvalidClient("cannot be parsed".into())),
    );
    assert_eq!(code_of(f.token(&bad, &plain, NOW).await), "invalid_client");
}

#[tokio::test]
async fn a_code_is_checked_then_spent_once_and_a_replay_revokes_its_tokens() {
    let f = fixture();
    // Expired, other client's, wrong redirect, wrong verifier: refused
    // before it is spent.
    assert_eq!(
        code_of(f.redeem(&f.code("svc", NOW), VERIFIER, NOW).await),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.redeem(&f.code("peer", NOW + 60), VERIFIER, NOW).await),
        "invalid_grant"
    );
    let code = f.code("svc", NOW + 60);
    assert_eq!(
        code_of(f.redeem(&code, &VERIFIER.replace('d', "e"), NOW).await),
        "invalid_grant"
    );
    let other_redirect = request(
        "authorization_code",
        &[
            ("code", &code),
            ("redirect_uri", "https://app.test/other"),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &other_redirect, NOW).await),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.redeem("not-a-code", VERIFIER, NOW).await),
        "invalid_grant"
    );

    let first = f.redeem(&code, VERIFIER, NOW).await.unwrap();
    assert!(first.refresh_token.is_some() && first.id_token.is_some());
    assert_eq!(first.scope.as_deref(), Some("openid read"));
    assert!(f.active(&first.access_token, NOW + 1));
    // Replayed: refused, and every token minted from it is revoked.
    assert_eq!(
        code_of(f.redeem(&code, VERIFIER, NOW + 1).await),
        "invalid_grant"
    );
    assert!(!f.active(&first.access_token, NOW + 2));
    assert!(!f.active(first.refresh_token.as_deref().unwrap(), NOW + 2));
}

#[tokio::test]
async fn refresh_rotates_narrows_and_detects_reuse_and_confusion() {
    let f = fixture();
    let first = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let refresh = first.refresh_token.unwrap();
    let form = |token: &str, scope: Option<&str>| {
        let mut pairs = vec![("refresh_token", token)];
        pairs.extend(scope.map(|s| ("scope", s)));
        request("refresh_token", &pairs)
    };
    // Bound to the certificate: another certificate of the same client
    // authenticates, but may not use it (RFC 8705 §3); a stranger's does
    // not even authenticate.
    assert_eq!(
        code_of(
            f.token(&tls(&f.other_cert), &form(&refresh, None), NOW)
                .await
        ),
        "invalid_grant"
    );
    assert_eq!(
        code_of(f.token(&tls(&f.stranger), &form(&refresh, None), NOW).await),
        "invalid_client"
    );
    // Widening is refused; an access token is no refresh token.
    assert_eq!(
        code_of(
            f.token(&tls(&f.cert), &form(&refresh, Some("read write")), NOW)
                .await
        ),
        "invalid_scope"
    );
    assert_eq!(
        code_of(
            f.token(&tls(&f.cert), &form(&first.access_token, None), NOW)
                .await
        ),
        "invalid_grant"
    );
    // Narrowed rotation.
    let second = f
        .token(&tls(&f.cert), &form(&refresh, Some("read")), NOW + 5)
        .await
        .unwrap();
    assert_eq!(second.scope.as_deref(), Some("read"));
    assert!(second.id_token.is_none(), "no openid, no ID token");
    let next = second.refresh_token.unwrap();
    assert_ne!(next, refresh);
    // The old one again: reuse, the whole family is revoked.
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &form(&refresh, None), NOW + 6).await),
        "invalid_grant"
    );
    assert!(!f.active(&second.access_token, NOW + 7));
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &form(&next, None), NOW + 7).await),
        "invalid_grant"
    );
    // Past its lifetime a refresh token is refused.
    let later = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let expired = form(later.refresh_token.as_deref().unwrap(), None);
    assert_eq!(
        code_of(f.token(&tls(&f.cert), &expired, NOW + 86_401).await),
        "invalid_grant"
    );
}

#[tokio::test]
async fn introspection_authorizes_the_caller_and_says_only_active_or_not() {
    let f = fixture();
    let body = f.client_token("read").await;
    let form = |token: &str, client: ClientParams| IntrospectRequest {
        token: token.into(),
        token_type_hint: None,
        client,
    };
    let rs = basic("rs", "secret");
    let seen = introspect::introspect(
        &f.settings,
        &f.state,
        &rs,
        &form(&body.access_token, params(None, None)),
        NOW,
    )
    .unwrap();
    assert!(seen.active);
    assert_eq!(seen.client_id.as_deref(), Some("svc"));
    assert_eq!(seen.cnf.unwrap().x5t_s256, f.cert.thumbprint);
    // Expiry, a future token, garbage, a code: inactive, nothing more.
    assert!(!f.active(&body.access_token, NOW + 3600));
    assert!(
        !f.active(&body.access_token, NOW - 120),
        "issued in the future"
    );
    for junk in ["", "a.b.c", &f.code("svc", NOW + 60)] {
        assert_eq!(
            introspect::inspect(&f.settings, &f.state, junk, NOW).unwrap(),
            Default::default()
        );
    }
    // Callers: wrong secret, a client without introspection, nobody.
    let cases = [
        (basic("rs", "wrong"), params(None, None), "invalid_client"),
        (tls(&f.cert), params(Some("svc"), None), "invalid_client"),
        (ClientAuth::default(), params(None, None), "invalid_client"),
    ];
    for (auth, client, code) in cases {
        let r = introspect::introspect(
            &f.settings,
            &f.state,
            &auth,
            &form(&body.access_token, client),
            NOW,
        );
        assert_eq!(r.err().map(|e| e.code()), Some(code));
    }
    // A user's token never introspects, whatever it holds.
    let user = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    let bearer = ClientAuth::new(
        Some(Authorization::Bearer(user.access_token)),
        Ok(Some(f.cert.clone())),
    );
    let r = introspect::introspect(
        &f.settings,
        &f.state,
        &bearer,
        &form(&body.access_token, params(None, None)),
        NOW,
    );
    assert_eq!(r.err().map(|e| e.code()), Some("invalid_token"));
}

#[tokio::test]
async fn revocation_touches_only_the_callers_tokens() {
    let f = fixture();
    let own = f
        .token(&tls(&f.cert), &request("client_credentials", &[]), NOW)
        .await
        .unwrap()
        .access_token;
    let revoke = |auth: ClientAuth, client: ClientParams, token: String| {
        let f = &f;
        async move {
            let form = RevokeRequest {
                token,
                token_type_hint: None,
                client,
            };
            revoke::revoke(&f.settings, &f.state, &auth, &form, NOW).await
        }
    };
    // Another client asks: 200, and the token stays valid.
    revoke(
        ClientAuth::default(),
        params(Some("peer"), Some("secret")),
        own.clone(),
    )
    .await
    .unwrap();
    assert!(f.active(&own, NOW));
    revoke(tls(&f.cert), params(Some("svc"), None), own.clone())
        .await
        .unwrap();
    assert!(!f.active(&own, NOW));
    // Garbage is fine (RFC 7009 §2.2); a refresh token takes its family.
    revoke(tls(&f.cert), params(Some("svc"), None), "garbage".into())
        .await
        .unwrap();
    let user = f
        .redeem(&f.code("svc", NOW + 60), VERIFIER, NOW)
        .await
        .unwrap();
    revoke(
        tls(&f.cert),
        params(Some("svc"), None),
        user.refresh_token.unwrap(),
    )
    .await
    .unwrap();
    assert!(!f.active(&user.access_token, NOW));
}
