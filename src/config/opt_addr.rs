//! `Option<SocketAddr>` written as a string, `""` meaning none.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serializer};

pub(super) fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(addr) => s.serialize_str(&addr.to_string()),
        None => s.serialize_str(""),
    }
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("invalid socket address {s:?}")))
}
