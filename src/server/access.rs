//! The access log (`log.access`): one line per request at info, target
//! `certbound::access`, with the method, the path (never the query),
//! the status, the duration, the authenticated client's id when there is
//! one, and the peer's address (and the address a trusted proxy named).
//! Never a token, secret, password or certificate.
//!
//! The client id comes from deep inside the handlers without being passed
//! down: [`note_client`] sets it on the request's task-local slot.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

tokio::task_local! {
    static CLIENT: RefCell<Option<Box<str>>>;
}

/// Runs `request` with a slot for its client id; returns its output and
/// the id noted, if any.
pub async fn with_slot<F: Future>(request: F) -> (F::Output, Option<Box<str>>) {
    CLIENT
        .scope(RefCell::new(None), async move {
            let out = request.await;
            let client = CLIENT.with(|c| c.borrow_mut().take());
            (out, client)
        })
        .await
}

/// The request being answered was authenticated as `client_id`.
pub fn note_client(client_id: &str) {
    let _ = CLIENT.try_with(|c| *c.borrow_mut() = Some(client_id.into()));
}

/// Longest path written (paths are the client's to choose).
const MAX_PATH: usize = 200;

/// What is known of a request when it arrives, kept until it is answered
/// for its metrics and its access line.
pub struct Observed {
    started: Instant,
    endpoint: &'static str,
    /// With `log.access`: method, path, forwarded-for address.
    line: Option<(poem::http::Method, String, Option<IpAddr>)>,
}

impl Observed {
    /// A request whose endpoint label is `endpoint`; with `log.access`,
    /// its method, path as sent and the address a trusted proxy named.
    pub fn begin(
        endpoint: &'static str,
        line: Option<(poem::http::Method, String, Option<IpAddr>)>,
    ) -> Self {
        let line = line.map(|(method, mut path, forwarded)| {
            let mut end = path.len().min(MAX_PATH);
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            path.truncate(end);
            (method, path, forwarded)
        });
        Self {
            started: Instant::now(),
            endpoint,
            line,
        }
    }

    /// Whether an access line is written (the client id is then noted).
    pub fn logs(&self) -> bool {
        self.line.is_some()
    }

    /// The answer: counted, and its line written.
    pub fn finish(self, status: u16, client_id: Option<&str>, peer: SocketAddr) {
        let elapsed = self.started.elapsed();
        crate::metrics::request(self.endpoint, status, elapsed);
        let Some((method, path, forwarded)) = &self.line else {
            return;
        };
        tracing::info!(
            target: "certbound::access",
            method = method.as_str(),
            path = path.as_str(),
            status,
            duration_us = elapsed.as_micros() as u64,
            client_id,
            peer = %peer,
            forwarded_for = forwarded
                .filter(|ip| *ip != peer.ip())
                .map(tracing::field::display),
            "request"
        );
    }
}
