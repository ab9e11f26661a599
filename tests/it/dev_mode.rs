//! The first hour: `certbound` with no configuration at all (development
//! mode). The browser flow ends on the server's own callback page, and the
//! commands it shows, pasted into a shell, redeem the code, ask for the
//! user's claims and rotate the refresh token.

use std::process::{Command, Stdio};

use crate::browser::Browser;
use crate::common::Api;
use crate::common::rs::free_port;

/// The text of the page's `<pre>`, HTML entities undone.
fn pre(body: &str) -> String {
    let start = body.find("<pre>").unwrap_or_else(|| panic!("{body}")) + "<pre>".len();
    let end = body[start..].find("</pre>").unwrap() + start;
    body[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_servers_callback_page_gives_commands_that_work_when_pasted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .current_dir(dir.path())
        .env_remove("CERTBOUND_CONFIG")
        .env("NO_COLOR", "1")
        .env("CERTBOUND_SERVER__HTTPS", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let rx = crate::common::lines(stdout);
    let base = format!("https://127.0.0.1:{port}");
    let (mut authorize, mut started) = (None, false);
    while authorize.is_none() || !started {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the development server did not start");
        started |= line.contains(" started");
        if let Some(url) = line.trim_start_matches(['#', ' ']).strip_prefix(&base)
            && url.starts_with("/oauth2/authorize?")
        {
            authorize = Some(url.to_string());
        }
    }
    let authorize = authorize.unwrap();
    assert!(
        authorize.contains("redirect_uri=https%3A%2F%2F127%2E0%2E0%2E1%3A"),
        "{authorize}"
    );
    let ca = std::fs::read_to_string(dir.path().join("keys/ca.crt")).unwrap();
    let api = Api::at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), &ca);
    let mut browser = Browser::new(&api);
    let login = browser.get(&authorize).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser
        .login(&login, "alice@example.com", "dev-password")
        .await;
    let done = browser.decide(&consent, "approve_once").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let callback = done.location().strip_prefix(&base).unwrap().to_string();
    assert!(callback.starts_with("/dev/callback?code="), "{callback}");
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["cache-control"], "no-store");
    let commands = pre(&page.body);
    let out = Command::new("bash")
        .args(["-euc", &commands])
        .current_dir(dir.path())
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("\"id_token\":\""),
        "the code was redeemed: {said}"
    );
    assert!(
        said.contains("\"sub\":\"alice@example.com\""),
        "userinfo: {said}"
    );
    assert_eq!(
        said.matches("\"refresh_token\":\"").count(),
        2,
        "rotated: {said}"
    );
    // Anything but a code is not put into commands.
    let hostile = browser
        .get("/dev/callback?code=%27%3Brm%20-rf%20~%27")
        .await;
    assert_eq!(hostile.status, 200);
    assert!(
        !hostile.body.contains("<pre>") && hostile.body.contains("No code"),
        "{}",
        hostile.body
    );
    let _ = child.kill();
    let _ = child.wait();
}
