//! Test helpers: PKI ([`pki`]), the files a server starts with
//! ([`setup`]), a server in the test process and HTTPS clients for it
//! ([`server`]), the real binary as a child process ([`child`]), and JWT
//! and form helpers ([`jwt`]).

mod child;
mod jwt;
mod pki;
pub mod redis;
pub mod rs;
mod server;
mod setup;

pub use child::*;
pub use jwt::*;
pub use pki::*;
pub use server::*;
pub use setup::*;
