//! `[log]`: how `certbound serve` writes its log (to stdout). The level
//! filter is `CERTBOUND_LOG` (an `EnvFilter` directive such as `info` or
//! `certbound=debug`); an invalid one is a startup error.

use serde::{Deserialize, Serialize};

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (one human-readable line per event) or `json` (one JSON
    /// object per line, the fields as keys).
    pub format: LogFormat,
    /// One line per request at info (method, path, status, duration,
    /// client id when known, peer address).
    pub access: bool,
}

/// `log.format`
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            access: true,
        }
    }
}
