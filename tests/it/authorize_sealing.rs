//! The authorization endpoint's sealed values at the limits of what they
//! carry.

use crate::browser::*;
use crate::common::TestServer;

/// Finding 13: `state` and `nonce` at their limits, with characters JSON
/// must escape, still make a form and a code the server accepts.
#[tokio::test]
async fn longest_state_and_nonce_survive_sealing() {
    let setup = crate::common::Setup::with_server(
        "max_body_bytes = 65536",
        &config(""),
        "[\"127.0.0.1/32\"]",
        certbound::keys::Alg::ES256,
    );
    let server = TestServer::start_setup(setup).await;
    let mut browser = Browser::new(&server);
    let state = "\"".repeat(1024);
    let nonce = "\\".repeat(1024);
    let done = code_for(&mut browser, &[("state", &state), ("nonce", &nonce)]).await;
    assert_eq!(done.param("state").as_deref(), Some(state.as_str()));
    let code = done.param("code").unwrap();
    let web = crate::browser::identity(&server.pki, "web");
    let (status, body) = crate::browser::redeem(&server, &web, "web", &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    let id_token = crate::common::jwt_part(body["id_token"].as_str().unwrap(), 1);
    assert_eq!(id_token["nonce"], nonce);
    // One byte more, or a control character, is refused.
    for (k, v) in [
        ("state", "s".repeat(1025)),
        ("nonce", "a\u{1}b".to_string()),
    ] {
        let page = browser.authorize(&params(&[(k, &v)])).await;
        assert_eq!(page.status, 303, "{k}");
        assert_eq!(page.param("error").as_deref(), Some("invalid_request"));
    }
}
