//! Unit tests of `token.rs`.

use super::*;
use crate::keys::{Alg, KeySet, generate_key};

fn setup(alg: Alg) -> (tempfile::TempDir, KeySet, TokenService) {
    let dir = tempfile::tempdir().unwrap();
    generate_key(dir.path(), alg, 1).unwrap();
    let keys = KeySet::load(dir.path(), None).unwrap();
    let svc = TokenService {
        issuer: "https://as.example".into(),
        audience: "https://as.example".into(),
        lifetime: 60,
        refresh_audience: "https://as.example/oauth2/token".into(),
        refresh_lifetime: 600,
    };
    (dir, keys, svc)
}

const GRANT: AccessGrant<'static> = AccessGrant {
    sub: "c",
    client_id: "c",
    scope: "read",
    binding: Some("thumb"),
    username: None,
    fid: None,
    auth_time: None,
};

#[test]
fn refresh_and_access_tokens_never_pass_for_each_other() {
    let (_d, keys, svc) = setup(Alg::ES256);
    let refresh = svc
        .mint_refresh(
            &keys,
            RefreshGrant {
                username: "alice",
                client_id: "c",
                scope: "openid",
                binding: Some("thumb"),
                fid: "family",
                auth_time: 990,
                sid: "s",
            },
            1000,
        )
        .unwrap();
    let claims = svc.verify_refresh(&keys, &refresh, 1001).unwrap();
    assert_eq!((claims.fid.as_str(), claims.exp), ("family", 1600));
    assert_eq!(claims.cnf.unwrap().x5t_s256, "thumb");
    assert_eq!(svc.verify(&keys, &refresh, 1001), Err(Inactive::WrongType));
    let access = svc.mint(&keys, GRANT, 1000).unwrap();
    assert_eq!(
        svc.verify_refresh(&keys, &access, 1001),
        Err(Inactive::WrongType)
    );
    assert_eq!(
        svc.verify_refresh(&keys, &refresh, 1600),
        Err(Inactive::Expired)
    );
    let other_audience = TokenService {
        refresh_audience: "https://elsewhere/token".into(),
        ..svc.clone()
    };
    assert_eq!(
        other_audience.verify_refresh(&keys, &refresh, 1001),
        Err(Inactive::WrongType)
    );
}

#[test]
fn round_trip_every_algorithm() {
    for alg in [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA] {
        let (_d, keys, svc) = setup(alg);
        let token = svc.mint(&keys, GRANT, 1000).unwrap();
        let claims = svc.verify(&keys, &token, 1001).unwrap();
        assert_eq!(claims.cnf.unwrap().x5t_s256, "thumb");
        assert_eq!(claims.exp, 1060);
        assert_eq!(svc.verify(&keys, &token, 1060), Err(Inactive::Expired));
        assert_eq!(svc.verify(&keys, &token, 999), Err(Inactive::NotYetValid));
    }
}

#[test]
fn jti_is_128_random_bits() {
    let (_d, keys, svc) = setup(Alg::ES256);
    let jtis: std::collections::HashSet<String> = (0..200)
        .map(|_| {
            svc.verify(&keys, &svc.mint(&keys, GRANT, 1000).unwrap(), 1001)
                .unwrap()
                .jti
        })
        .collect();
    assert_eq!(jtis.len(), 200);
    assert!(jtis.iter().all(|j| j.len() == 22));
}

#[test]
fn confusion_and_tampering_are_inactive() {
    let (_d, keys, svc) = setup(Alg::ES256);
    let token = svc.mint(&keys, GRANT, 1000).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let with_header = |h: serde_json::Value| {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            parts[1],
            parts[2]
        )
    };
    let mut none = header.clone();
    none["alg"] = "none".into();
    assert!(
        svc.verify(
            &keys,
            &format!("{}.{}.", URL_SAFE_NO_PAD.encode(none.to_string()), parts[1]),
            1001
        )
        .is_err()
    );
    let mut hs = header.clone();
    hs["alg"] = "HS256".into();
    assert_eq!(
        svc.verify(&keys, &with_header(hs), 1001),
        Err(Inactive::AlgorithmMismatch)
    );
    let mut rs = header.clone();
    rs["alg"] = "RS256".into();
    assert_eq!(
        svc.verify(&keys, &with_header(rs), 1001),
        Err(Inactive::AlgorithmMismatch)
    );
    let mut kid = header.clone();
    kid["kid"] = "other".into();
    assert_eq!(
        svc.verify(&keys, &with_header(kid), 1001),
        Err(Inactive::UnknownKey)
    );
    let mut typ = header.clone();
    typ["typ"] = "JWT".into();
    assert_eq!(
        svc.verify(&keys, &with_header(typ), 1001),
        Err(Inactive::WrongType)
    );
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = "admin".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        svc.verify(&keys, &tampered, 1001),
        Err(Inactive::BadSignature)
    );
    let foreign = TokenService {
        issuer: "https://evil".into(),
        ..svc.clone()
    };
    assert_eq!(
        foreign.verify(&keys, &token, 1001),
        Err(Inactive::ForeignIssuer)
    );
    assert_eq!(
        svc.verify(&keys, "not.a.jwt", 1001),
        Err(Inactive::Malformed)
    );
    assert_eq!(
        svc.verify(&keys, &"a".repeat(MAX_TOKEN_LEN + 1), 1001),
        Err(Inactive::Malformed)
    );
}

fn forge(keys: &KeySet, header: serde_json::Value, claims: serde_json::Value) -> String {
    sign_segments(
        keys.current(),
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn audience_crit_future_iat_and_bad_ids_are_inactive() {
    let (_d, keys, svc) = setup(Alg::ES256);
    let key = keys.current();
    let header = serde_json::json!({"alg": key.alg.name(), "kid": key.kid, "typ": "at+jwt"});
    let claims = serde_json::json!({
        "iss": "https://as.example", "sub": "c", "aud": "https://as.example",
        "client_id": "c", "iat": 1000, "nbf": 1000, "exp": 2000, "jti": "j1",
    });
    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[field] = value;
        forge(&keys, header.clone(), c)
    };
    assert!(
        svc.verify(&keys, &forge(&keys, header.clone(), claims.clone()), 1001)
            .is_ok()
    );
    assert!(
        svc.verify(
            &keys,
            &with("aud", serde_json::json!(["x", "https://as.example"])),
            1001
        )
        .is_ok()
    );
    assert_eq!(
        svc.verify(&keys, &with("aud", "https://rs.elsewhere".into()), 1001),
        Err(Inactive::WrongAudience)
    );
    assert_eq!(
        svc.verify(&keys, &with("aud", serde_json::json!(["x"])), 1001),
        Err(Inactive::WrongAudience)
    );
    assert_eq!(
        svc.verify(&keys, &with("aud", 5.into()), 1001),
        Err(Inactive::WrongAudience)
    );
    assert_eq!(
        svc.verify(
            &keys,
            &with("iat", (1001 + MAX_CLOCK_SKEW + 1).into()),
            1001
        ),
        Err(Inactive::IssuedInFuture)
    );
    assert!(
        svc.verify(&keys, &with("iat", (1001 + MAX_CLOCK_SKEW).into()), 1001)
            .is_ok()
    );
    for jti in ["", "a b", "\u{7f}"] {
        assert_eq!(
            svc.verify(&keys, &with("jti", jti.into()), 1001),
            Err(Inactive::Malformed),
            "{jti:?}"
        );
    }
    for value in [serde_json::json!(["exp"]), serde_json::Value::Null] {
        let mut crit = header.clone();
        crit["crit"] = value;
        assert_eq!(
            svc.verify(&keys, &forge(&keys, crit, claims.clone()), 1001),
            Err(Inactive::CriticalExtension)
        );
    }
    // A header naming alg twice is not guessed at.
    let twice = format!(
        "{{\"alg\":\"none\",\"alg\":\"{}\",\"kid\":\"{}\",\"typ\":\"at+jwt\"}}",
        key.alg.name(),
        key.kid
    );
    let token = sign_segments(
        keys.current(),
        twice.as_bytes(),
        claims.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(svc.verify(&keys, &token, 1001), Err(Inactive::Malformed));
}
