//! `certbound-verify`: the resource server's side of certbound. It checks
//! access tokens bound to a client certificate (RFC 8705 §3, RFC 9068 §4)
//! and refuses any not presented with that certificate.
//!
//! - [`ResourceServer`] (in [`guard`]): the gate a route sits behind: the
//!   bearer token ([`bearer`], RFC 6750), the certificate (from TLS, or a
//!   trusted proxy's header), the checks, the route's scopes; [`Require`]
//!   is an axum layer (feature `axum`, module `axum`) and a poem middleware
//!   (feature `poem`, module `poem`), and [`Token`] the handler's extractor;
//! - [`verifier`]: keys, expectations and optional introspection in one
//!   [`verifier::Verifier`];
//! - [`remote`]: the authorization server's keys, fetched (by URL or
//!   discovery, [`client`]) and cached: single flight, cooldown, negative
//!   cache, `max-age`, background refresh, the last good set kept;
//! - [`introspection`]: revocation awareness (RFC 7662), cached, failing
//!   closed;
//! - [`access`]: an access token's checks: the JWS, `iss`, `aud`, the
//!   validity window, required claims, the binding;
//! - [`jws`], [`jwks`]: signature verification with the algorithm pinned
//!   per key (RFC 7515, RFC 8725), keys from a JWKS (RFC 7517);
//! - [`binding`]: the `x5t#S256` thumbprint (RFC 8705 §3.1) and the
//!   binding check, in constant time;
//! - [`header`], [`proxy`]: the client certificate as a TLS-terminating
//!   proxy forwards it, in the six formats proxies use, believed only
//!   from trusted proxies;
//! - `tls` (feature `rustls`): a client-certificate verifier that
//!   accepts any certificate and verifies the handshake signature.
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
