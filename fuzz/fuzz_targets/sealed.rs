//! The sealed-value opener (AES-256-GCM, purpose as associated data):
//! never panics on any input; anything it seals, it opens again, and only
//! for the same purpose.
#![no_main]

use certbound::login::{Consent, Session};
use certbound::oauth::authorize::{CodeClaims, Pending};
use certbound::seal::{Purpose, Sealer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Opens what it seals: the cap is sized, as the server sizes it, for
    // the largest JSON it seals (a string escapes to at most 6 bytes a
    // byte). A value past the cap is refused, by design (found by this
    // target; `seal::tests::the_cap_follows_what_is_sealed`).
    let Ok(sealer) = Sealer::new(&[7; 32]).map(|s| s.with_max_json(6 * text.len() + 2)) else {
        return;
    };
    let _ = sealer.open::<CodeClaims>(Purpose::Code, text);
    let _ = sealer.open::<Pending>(Purpose::Form, text);
    let _ = sealer.open::<Session>(Purpose::Session, text);
    let _ = sealer.open::<Consent>(Purpose::Consent, text);
    if let Ok(sealed) = sealer.seal(Purpose::Form, &text) {
        assert_eq!(
            sealer.open::<String>(Purpose::Form, &sealed).as_deref(),
            Some(text)
        );
        assert_eq!(sealer.open::<String>(Purpose::Code, &sealed), None);
    }
});
