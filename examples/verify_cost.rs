//! What verifying one token costs, per algorithm: HS256, RS256 (2048-bit), ES256, EdDSA. The
//! same `jsonwebtoken` calls as the server's (header, then signature and claims with the
//! key's algorithm; the key lookup by `kid` is a hash map read on top).
//!
//! ```sh
//! cargo run --release --example verify_cost
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a measurement tool

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use librarian_testkit::jwks::{KeyKind, SigningKey, claims};
use std::time::Instant;

const N: u32 = 2_000;

fn main() {
    let secret = b"an-hs256-secret-of-at-least-32-bytes!!";
    let mut cases: Vec<(&str, String, DecodingKey, Algorithm)> = vec![(
        "HS256",
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims("alice", 3600),
            &EncodingKey::from_secret(secret),
        )
        .unwrap(),
        DecodingKey::from_secret(secret),
        Algorithm::HS256,
    )];
    for (name, kind) in [
        ("RS256", KeyKind::Rs256),
        ("ES256", KeyKind::Es256),
        ("EdDSA", KeyKind::EdDsa),
    ] {
        let key = SigningKey::generate(kind, name);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        cases.push((
            name,
            key.sign(&claims("alice", 3600)),
            DecodingKey::from_jwk(&jwk).unwrap(),
            key.alg,
        ));
    }
    println!("{N} verifications each (header + signature + claims), one core:");
    for (name, token, key, alg) in &cases {
        let mut validation = Validation::new(*alg);
        validation.set_required_spec_claims(&["exp"]);
        // Warm up, then time.
        for _ in 0..50 {
            verify(token, key, &validation);
        }
        let start = Instant::now();
        for _ in 0..N {
            verify(token, key, &validation);
        }
        let each = start.elapsed() / N;
        println!("  {name:6} {:>8.1} µs per token", each.as_secs_f64() * 1e6);
    }
}

fn verify(token: &str, key: &DecodingKey, validation: &Validation) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, validation.algorithms[0]);
    jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, validation)
        .unwrap();
}
