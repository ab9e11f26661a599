#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests: the real server on real sockets, real TLS, client
//! certificates generated per test. One binary, one module per concern.

mod authorize;
mod authorize_sealing;
mod browser;
mod cli;
mod common;
mod consent;
mod deploy;
mod dev_mode;
mod discovery;
mod e2e;
mod headers;
mod hostile;
mod introspect;
mod introspect_users;
mod keys;
mod limits;
mod login_limits;
mod openapi;
mod operations;
mod process;
mod refresh;
mod reload;
mod replica_faults;
mod replica_login;
mod replicas;
mod resource_server;
mod revoke;
mod revoke_all;
mod seeds;
mod tenant_flows;
mod tenants;
mod token;
mod trust;
mod verify_cli;
mod verify_crate;
