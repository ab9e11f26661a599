//! `certbound-verify`: what a resource server checks of a certbound access
//! token that is bound to a client certificate (RFC 8705 §3). Today it
//! holds the pieces the authorization server and resource servers share:
//!
//! - [`header`]: the client certificate as a TLS-terminating proxy
//!   forwards it, in the six formats proxies use;
//! - [`binding`]: the certificate's `x5t#S256` thumbprint (RFC 8705 §3.1)
//!   and the binding check, compared in constant time;
//! - [`jws`]: signature verification with the algorithm pinned per key,
//!   `typ` and `crit` (RFC 7515, RFC 8725);
//! - [`jwks`]: keys from a JWKS document, each pinned to one algorithm;
//! - [`proxy`]: which proxies are believed about the client certificate
//!   and address (the trusted-network rule);
//! - [`access`]: an access token as a resource server checks it: the JWS,
//!   `iss`, `aud`, `exp`/`nbf` with a leeway, required claims, and the
//!   binding to the presented certificate.
//!
//! certbound itself uses these, so the server and its resource servers
//! apply one implementation of each check.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// The JWT library the key and algorithm types come from.
pub use jsonwebtoken;

pub use guard::{PeerCertificate, Require, ResourceServer, Token};
/// The HTTP client the keys and introspection are fetched with.
pub use reqwest;

pub mod access;
#[cfg(feature = "axum")]
pub mod axum;
pub mod bearer;
pub mod binding;
pub mod client;
pub mod guard;
pub mod header;
pub mod introspection;
pub mod jwks;
pub mod jws;
#[cfg(feature = "poem")]
pub mod poem;
pub mod proxy;
pub mod remote;
#[cfg(feature = "rustls")]
pub mod tls;
pub mod verifier;
