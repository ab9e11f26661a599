//! The consent page: what each scope gives, who is signed in, "not you?".

use crate::browser::*;
use crate::common::TestServer;

/// The consent page says what each scope gives (configured words, escaped)
/// and who is signed in; "not you?" signs out and asks again.
#[tokio::test]
async fn consent_describes_scopes_and_not_you_signs_out() {
    let server = TestServer::start(&config(
        "scope_descriptions = { read = \"Read <your> orders\", openid = \"Know it is you\" }",
    ))
    .await;
    let mut browser = Browser::new(&server);
    let login = browser
        .authorize(&params(&[("scope", "openid email read")]))
        .await;
    let consent = browser.login(&login, "alice@example.com", PASSWORD).await;
    for shown in [
        "<code>read</code> — Read &lt;your&gt; orders",
        "<code>openid</code> — Know it is you",
        "<code>email</code> — Your email address",
        "Signed in as <strong>alice@example.com</strong>",
        "id=\"switch-user\"",
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }
    assert!(browser.cookies.contains_key("certbound_session"));
    let switched = browser.decide(&consent, "switch_user").await;
    assert_eq!(switched.status, 200, "{}", switched.body);
    assert!(
        switched.body.contains("name=\"password\""),
        "{}",
        switched.body
    );
    assert!(
        !browser.cookies.contains_key("certbound_session"),
        "signed out"
    );
    let bob = browser.login(&switched, "bob", PASSWORD).await;
    assert!(
        bob.body.contains("Signed in as <strong>bob</strong>"),
        "{}",
        bob.body
    );
    let done = browser.decide(&bob, "approve_once").await;
    assert_eq!(done.status, 303, "{}", done.body);
}
