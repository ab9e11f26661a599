//! The operator commands behind `certbound <command>`, apart from serving.

pub mod keys;
pub mod revocations;
pub mod verify;
