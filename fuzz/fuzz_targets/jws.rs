//! The JWS/JWT decoder and verifier, both ways in:
//! - byte 0 even: the rest is a compact token as a client would send it;
//! - byte 0 odd: the rest is `header 0xFF claims`, signed with the server's
//!   own key first (the text `KID` in the header stands for its key id), so
//!   claim parsing and checks are reached too.
//!
//! Never panics; a token that verifies has the configured issuer and
//! audience and a list-usable `jti`.
#![no_main]

use std::sync::OnceLock;

use certbound::keys::{Alg, KeySet};
use certbound::token::TokenService;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    keys: KeySet,
    tokens: TokenService,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        certbound::keys::generate_key(dir.path(), Alg::ES256, 1).expect("key");
        let keys = KeySet::load(dir.path(), None).expect("keys");
        let tokens = TokenService {
            issuer: "https://as.example".into(),
            audience: "https://as.example".into(),
            lifetime: 600,
            refresh_audience: "https://as.example/oauth2/token".into(),
            refresh_lifetime: 600,
        };
        Fixture {
            _dir: dir,
            keys,
            tokens,
        }
    })
}

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
        let header = String::from_utf8_lossy(header).replace("KID", &f.keys.current().kid);
        match certbound::token::sign_segments(f.keys.current(), header.as_bytes(), claims) {
            Ok(token) => token,
            Err(_) => return,
        }
    };
    if let Ok(claims) = f.tokens.verify(&f.keys, &token, NOW) {
        assert_eq!(claims.iss, "https://as.example");
        assert!(claims.exp > NOW && claims.nbf <= NOW);
        assert!(certbound::revocation::record::valid_id(&claims.jti));
    }
    if let Ok(claims) = f.tokens.verify_refresh(&f.keys, &token, NOW) {
        assert_eq!(claims.aud, "https://as.example/oauth2/token");
        assert!(certbound::revocation::record::valid_id(&claims.fid));
    }
});
