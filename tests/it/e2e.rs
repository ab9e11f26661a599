//! End to end in a real browser: headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini), opens the authorize URL, logs in, approves,
//! lands on a redirect URI served by this test; the code is then redeemed
//! over mTLS and the ID token verified with the JWKS. Then the same browser
//! signs in at tenant acme.com (`/t/acme.com/`): its own login page and
//! user, while the default tenant's session stays a separate one.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them;
//! `just e2e` runs this test alone). Paths can be overridden with
//! `CHROMEDRIVER` and `CHROMIUM`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::browser::*;
use crate::common::rs::free_port;
use crate::common::{TestServer, jwt_part};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Types `text` into the field with id `id`.
async fn fill(
    browser: &fantoccini::Client,
    id: &str,
    text: &str,
) -> Result<(), fantoccini::error::CmdError> {
    browser.find(Locator::Id(id)).await?.send_keys(text).await
}

/// The element with id `id`, once the page has it (at most 20 s).
async fn wait_for(
    browser: &fantoccini::Client,
    id: &str,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(id))
        .await
}

/// Serves requests on `listener`, sending each request line to `lines`.
async fn capture_redirects(
    listener: tokio::net::TcpListener,
    lines: tokio::sync::mpsc::UnboundedSender<String>,
) {
    loop {
        let line = capture_redirect(&listener).await;
        if lines.send(line).is_err() {
            return;
        }
    }
}

/// Serves one request on `listener` and gives back its request line.
async fn capture_redirect(listener: &tokio::net::TcpListener) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0;
    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf[read..]).await.unwrap();
        assert!(n > 0, "connection closed early");
        read += n;
    }
    let request = String::from_utf8_lossy(&buf[..read]).to_string();
    let body = "<!DOCTYPE html><title>callback</title><p id=\"done\">Signed in</p>";
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await.unwrap();
    request.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn browser_login_consent_and_code_redemption() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The client's redirect URI, served by this test.
    let callback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", callback.local_addr().unwrap());
    let spa = |t: &str| {
        format!(
            "\n[[{t}clients]]\nclient_id = \"spa\"\nclient_name = \"Browser test app\"\n\
             token_endpoint_auth_method = \"tls_client_auth\"\ntls_client_auth_subject_dn = \"CN=spa\"\n\
             grant_types = [\"authorization_code\", \"refresh_token\"]\n\
             redirect_uris = [\"{redirect_uri}\"]\nscope = \"openid profile email\"\n"
        )
    };
    // Tenant acme.com: the same client, and its own alice.
    let extra = format!(
        "{}{}\n[[tenants]]\ndomain = \"acme.com\"\n{}[[tenants.users]]\nusername = \"alice\"\npassword_hash = \"{}\"\n",
        config(""),
        spa(""),
        spa("tenants."),
        certbound::users::hash_password(PASSWORD).unwrap()
    );
    let server = TestServer::start(&extra).await;
    let (lines, mut captured) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(capture_redirects(callback, lines));

    let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let driver = Command::new(&driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Driver)
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {driver_path} ({e}): install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver), or set CHROMEDRIVER"
            )
        });
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--ignore-certificate-errors", "--disable-background-networking",
                     "--window-size=420,900"]
        }),
    );
    let mut browser = None;
    for _ in 0..100 {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => {
                browser = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let browser = browser.expect("chromedriver answers within 10 s");
    let _driver = driver;

    let query = crate::common::serde_urlencoded(&[
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", &redirect_uri),
        ("scope", "openid profile email"),
        ("state", "browser-state"),
        ("nonce", "browser-nonce"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let run = async {
        browser
            .goto(&server.https_url(&format!("/oauth2/authorize?{query}")))
            .await?;
        let title = browser.title().await?;
        assert!(title.contains("Sign in"), "{title}");
        // A wrong password first: the page says so and keeps the name.
        fill(&browser, "username", "alice@example.com").await?;
        fill(&browser, "password", "wrong").await?;
        browser.find(Locator::Id("sign-in")).await?.click().await?;
        let error = browser.wait().for_element(Locator::Id("error")).await?;
        assert_eq!(error.text().await?, "Invalid username or password.");
        fill(&browser, "password", PASSWORD).await?;
        browser.find(Locator::Id("sign-in")).await?.click().await?;
        let approve = wait_for(&browser, "approve-once").await?;
        let scopes = browser.find(Locator::Id("scopes")).await?.text().await?;
        assert!(scopes.contains("email"), "{scopes}");
        approve.click().await?;
        wait_for(&browser, "done").await?;
        let url = browser.current_url().await?;

        // Tenant acme.com in the same browser: its own sign-in page (the
        // default tenant's session is none there), its own user.
        browser
            .goto(&server.https_url(&format!("/t/acme.com/oauth2/authorize?{query}")))
            .await?;
        let title = browser.title().await?;
        assert!(title.contains("Sign in"), "{title}");
        fill(&browser, "username", "alice").await?;
        fill(&browser, "password", PASSWORD).await?;
        browser.find(Locator::Id("sign-in")).await?.click().await?;
        wait_for(&browser, "approve-once").await?.click().await?;
        wait_for(&browser, "done").await?;
        let tenant_url = browser.current_url().await?;
        // Back at the default tenant, still signed in there: straight to
        // consent (the browser kept the two sessions apart by path).
        browser
            .goto(&server.https_url(&format!("/oauth2/authorize?{query}")))
            .await?;
        wait_for(&browser, "approve-once").await?;
        Ok::<_, fantoccini::error::CmdError>((url, tenant_url))
    };
    let (landed, tenant_landed) = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("browser flows within 90 s")
        .expect("browser flow");
    let _ = browser.close().await;
    // Both redirects reached the client (the browser may ask for a
    // favicon there too).
    let mut callbacks = 0;
    while callbacks < 2 {
        let request_line = tokio::time::timeout(Duration::from_secs(5), captured.recv())
            .await
            .expect("the redirect URI was called")
            .unwrap();
        callbacks += usize::from(request_line.starts_with("GET /callback?"));
    }
    let params = query_of(&landed);
    assert_eq!(params["state"], "browser-state");
    assert_eq!(params["iss"], "https://certbound.test");
    let code = &params["code"];

    // Redeem over mTLS with the client's certificate.
    let spa = identity(&server.pki, "spa");
    let at_spa = [("redirect_uri", redirect_uri.as_str())];
    let (status, body) = redeem(&server, &spa, "spa", code, &at_spa).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let id_token = body["id_token"].as_str().unwrap();
    crate::common::verify_with_jwks(&server, id_token, "spa").await;
    let id = jwt_part(id_token, 1);
    assert_eq!(id["nonce"], "browser-nonce");
    assert_eq!(id["at_hash"], half_sha256(access));
    assert_eq!(id["c_hash"], half_sha256(code));
    assert_eq!(id["sub"], "alice@example.com");
    assert_eq!(
        jwt_part(access, 1)["cnf"]["x5t#S256"],
        spa.thumbprint(),
        "bound to the redeeming certificate"
    );

    // acme's code: issued by acme for its alice, redeemed at acme.
    let params = query_of(&tenant_landed);
    assert_eq!(params["iss"], "https://certbound.test/t/acme.com");
    let acme = server.under("/t/acme.com");
    let (status, body) = redeem(&acme, &spa, "spa", &params["code"], &at_spa).await;
    assert_eq!(status, 200, "{body}");
    let id = jwt_part(body["id_token"].as_str().unwrap(), 1);
    assert_eq!(
        (id["iss"].as_str(), id["sub"].as_str()),
        (Some("https://certbound.test/t/acme.com"), Some("alice"))
    );
}

/// The query parameters of a URL the browser landed on.
fn query_of(url: &url::Url) -> std::collections::HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
