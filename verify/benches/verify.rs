//! `just bench-verify [--quick]`: access-token verification in-process
//! (ES256, keys parsed once), in µs per token, next to its floor measured
//! in the same run: one ES256 verification (aws-lc) plus one SHA-256 of
//! the client certificate. The target is at most 1.2× the floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_verify::access::{self, Expect};
use certbound_verify::binding;
use certbound_verify::jwks::Jwks;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Alternating rounds of each measure: many short ones, since on a shared
/// virtual machine a slow phase can last a second and the fastest round
/// of each is what is kept.
const ROUNDS: u32 = 40;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u32 = if quick { 50 } else { 1_000 };

    let pair = rcgen::KeyPair::generate().unwrap();
    let raw = pair.public_key_raw().to_vec();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "alg": "ES256", "use": "sig", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
    let keys = Jwks::from_json(jwks.to_string().as_bytes(), &[]).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client.example".into()])
        .unwrap()
        .self_signed(&pair)
        .unwrap()
        .der()
        .to_vec();
    let now = 1_800_000_000u64;
    let claims = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "orders-service", "aud": "https://api.example.com",
        "exp": now + 3600, "iat": now, "nbf": now, "jti": "NdT5mBzmS2Wm0nkJ3ZxWmw",
        "client_id": "orders-service", "scope": "orders:read orders:write",
        "cnf": {"x5t#S256": binding::thumbprint(&cert)}
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    header.typ = Some("at+jwt".into());
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
    let expect = Expect::new("https://auth.example.com", "https://api.example.com");

    // The floor: what no implementation can skip.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        raw.clone(),
    );
    let time = |f: &dyn Fn()| {
        for _ in 0..n / 10 {
            f();
        }
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let floor_once = || {
        use sha2::Digest;
        black_box(sha2::Sha256::digest(black_box(&cert)));
        public
            .verify(black_box(input.as_bytes()), black_box(&sig))
            .unwrap();
    };
    let full_once = || {
        let presented = binding::thumbprint(black_box(&cert));
        let token: access::AccessToken =
            access::verify(&keys, black_box(&token), &expect, Some(&presented), now).unwrap();
        black_box(token);
    };
    // Rounds in alternation, the fastest of each kept: the machine's noise
    // (other processes, frequency changes) only ever adds time.
    let (mut floor, mut full) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..ROUNDS {
        floor = floor.min(time(&floor_once));
        full = full.min(time(&full_once));
    }
    let ratio = full / floor;
    let table = format!(
        "| measure | µs per token |\n|---|---:|\n\
         | floor: ES256 verify + SHA-256 of the certificate | {floor:.1} |\n\
         | access::verify + thumbprint of the certificate | {full:.1} |\n\n\
         fastest of {ROUNDS} rounds of {n} tokens each; ratio to floor {ratio:.2} (target ≤ 1.20: {})\n",
        if ratio <= 1.2 { "met" } else { "not met" }
    );
    print!("{table}");
    if !quick {
        write_section(&table);
    }
}

/// Puts this run's figures in BENCHMARKS.md, between its markers (which
/// `just bench` keeps when it rewrites the file).
fn write_section(table: &str) {
    const START: &str = "<!-- bench-verify -->";
    const END: &str = "<!-- /bench-verify -->";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!(
        "{START}\n## certbound-verify in-process (`just bench-verify`)\n\n\
         One access token checked as a resource server checks it (ES256, keys parsed once), next to \
         the floor measured in the same run.\n\n{table}{END}"
    );
    let text = match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &text[..a], &text[b + END.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(&path, text).unwrap();
    eprintln!("wrote the bench-verify section of BENCHMARKS.md");
}
