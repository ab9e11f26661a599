//! `certbound-verify`: what a resource server checks of a certbound access
//! token that is bound to a client certificate (RFC 8705 §3). Today it
//! holds the pieces the authorization server and resource servers share:
//!
//! - [`header`]: the client certificate as a TLS-terminating proxy
//!   forwards it, in the six formats proxies use;
//! - [`binding`]: the certificate's `x5t#S256` thumbprint (RFC 8705 §3.1)
//!   and the binding check, compared in constant time;
//! - [`jws`]: signature verification with the algorithm pinned per key,
//!   `typ` and `crit` (RFC 7515, RFC 8725).
//!
//! certbound itself uses these, so the server and its resource servers
//! apply one implementation of each check.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod binding;
pub mod header;
pub mod jws;
