//! A minimal user agent for the login and consent pages over real HTTPS:
//! keeps cookies, never follows redirects, reads the forms' hidden fields.
//! The real-browser test is in `tests/e2e.rs`.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

use crate::common::{Api, Identity, Pki};

pub const REDIRECT: &str = "https://app.test/cb";
pub const PASSWORD: &str = "correct horse battery";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Clients `web` and `other` (PKI method, subjects CN=web / CN=other) and
/// the users alice@example.com and bob, both with [`PASSWORD`].
pub fn config(extra_login: &str) -> String {
    let hash = certbound::users::hash_password(PASSWORD).unwrap();
    format!(
        r#"
[login]
{extra_login}

[[clients]]
client_id = "web"
client_name = "Web <App>"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=web"
grant_types = ["authorization_code", "refresh_token"]
redirect_uris = ["{REDIRECT}", "https://app.test/other"]
scope = "openid profile email read write introspect"

[[clients]]
client_id = "other"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=other"
grant_types = ["authorization_code", "refresh_token"]
redirect_uris = ["{REDIRECT}"]
scope = "openid read"

[[clients]]
client_id = "rs"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "CN=rs"
scope = "introspect"
introspection = true

[[users]]
username = "alice@example.com"
password_hash = "{hash}"
name = "Alice Example"
given_name = "Alice"
family_name = "Example"
email = "alice@example.com"
email_verified = true

[[users]]
username = "bob"
password_hash = "{hash}"
"#
    )
}

/// A client certificate with subject CN=`cn` from the server's test CA.
pub fn identity(pki: &Pki, cn: &str) -> Identity {
    pki.client(&[(rcgen::DnType::CommonName, cn)], Vec::new())
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of hidden input `name`.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start =
            self.body.find(&marker).unwrap_or_else(|| {
                panic!("no field {name} in page {}: {}", self.status, self.body)
            }) + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_string()
    }

    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .unwrap_or_else(|| panic!("no redirect ({}): {}", self.status, self.body))
            .to_str()
            .unwrap()
    }

    /// A query parameter of the redirect.
    pub fn param(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(self.location()).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

pub struct Browser {
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    base: String,
}

impl Browser {
    pub fn new(server: &Api) -> Self {
        Self {
            client: server.client_with(None, reqwest::redirect::Policy::none()),
            cookies: HashMap::new(),
            base: server.https_url(""),
        }
    }

    /// A browser behind the (trusted, loopback) proxy at `address`: plain
    /// HTTP, with `X-Forwarded-For` set as nginx sets it.
    pub fn via_proxy(server: &Api, address: &str) -> Self {
        Self::forwarded_to(reqwest::Client::builder(), server.http_url(""), address)
    }

    /// Over HTTPS, with `X-Forwarded-For: address` (believed when the
    /// loopback peer is a trusted proxy).
    pub fn forwarded(server: &Api, address: &str) -> Self {
        let builder = reqwest::Client::builder().tls_backend_preconfigured(server.tls_config(None));
        Self::forwarded_to(builder, server.https_url(""), address)
    }

    fn forwarded_to(builder: reqwest::ClientBuilder, base: String, address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        Self {
            client: builder
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            base,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let body = resp.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    /// GET `/oauth2/authorize` with these query parameters.
    pub async fn authorize(&mut self, params: &[(&str, &str)]) -> Page {
        let query = crate::common::serde_urlencoded(params);
        self.get(&format!("/oauth2/authorize?{query}")).await
    }

    pub async fn get(&mut self, path_and_query: &str) -> Page {
        let resp = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// POSTs a form to `/oauth2/authorize`.
    pub async fn post(&mut self, form: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(format!("{}/oauth2/authorize", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header())
            .body(crate::common::serde_urlencoded(form))
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// Submits the login form of `page`.
    pub async fn login(&mut self, page: &Page, username: &str, password: &str) -> Page {
        let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
        self.post(&[
            ("step", "login"),
            ("request", &request),
            ("csrf", &csrf),
            ("username", username),
            ("password", password),
        ])
        .await
    }

    /// Presses a consent button (`approve_once`, `approve_always`, `deny`).
    pub async fn decide(&mut self, page: &Page, decision: &str) -> Page {
        let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
        self.post(&[
            ("step", "consent"),
            ("request", &request),
            ("csrf", &csrf),
            ("decision", decision),
        ])
        .await
    }
}

/// The standard request parameters for client `web`, plus `extra`.
pub fn params<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email read"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        p.retain(|(key, _)| key != k);
        if !v.is_empty() {
            p.push((k, v));
        }
    }
    p
}

/// Log in as alice and approve once: the redirect page carrying the code.
pub async fn code_for(browser: &mut Browser, extra: &[(&str, &str)]) -> Page {
    code_as(browser, "alice@example.com", extra).await
}

/// Log in as `username` and approve once: the redirect page carrying the
/// code.
pub async fn code_as(browser: &mut Browser, username: &str, extra: &[(&str, &str)]) -> Page {
    let login = browser.authorize(&params(extra)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser.login(&login, username, PASSWORD).await;
    assert!(consent.body.contains("approve-once"), "{}", consent.body);
    let done = browser.decide(&consent, "approve_once").await;
    assert_eq!(done.status, 303, "{}", done.body);
    done
}

/// Redeems a code over mTLS as `client_id` with `id`.
pub async fn redeem(
    server: &Api,
    id: &Identity,
    client_id: &str,
    code: &str,
    extra: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    for (k, v) in extra {
        form.retain(|(key, _)| key != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    token_request(server, id, &form).await
}

/// POSTs `form` to the token endpoint over mTLS with `id`.
async fn token_request(
    server: &Api,
    id: &Identity,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let (status, body, _) = server
        .post(
            &server.client(Some(id)),
            &server.https_url("/oauth2/token"),
            form,
            &[],
        )
        .await;
    (status, body)
}

/// Refreshes over mTLS.
pub async fn refresh(
    server: &Api,
    id: &Identity,
    client_id: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    form.extend_from_slice(extra);
    token_request(server, id, &form).await
}

/// Introspects as client `rs`.
pub async fn introspect(server: &Api, pki: &Pki, token: &str) -> serde_json::Value {
    let rs = identity(pki, "rs");
    let (status, body, _) = server
        .post(
            &server.client(Some(&rs)),
            &server.https_url("/oauth2/introspect"),
            &[("client_id", "rs"), ("token", token)],
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// OIDC Core §3.1.3.6, computed here independently of the server.
pub fn half_sha256(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(value.as_bytes())[..16])
}
