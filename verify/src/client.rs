//! The HTTP client a resource server talks to its authorization server
//! with: JWKS and discovery documents (RFC 7517, RFC 8414) and
//! introspection (RFC 7662). Every answer is read with a size bound and a
//! timeout, so a slow or hostile endpoint cannot hold a request or memory.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde::Deserialize;

/// Largest answer read from the authorization server.
pub const MAX_BODY: usize = 256 * 1024;

/// How the client reaches the authorization server.
#[derive(Clone)]
pub struct HttpOptions {
    /// Whole-request timeout (default 5 s).
    pub timeout: Duration,
    /// PEM certificates of CAs to trust besides the system's (a private
    /// CA, or a development server's own).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate and key (PEM, concatenated) to present: for
    /// introspection with mutual-TLS client authentication.
    pub identity_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field(
                "identity_pem",
                &self.identity_pem.as_ref().map(|_| "(redacted)"),
            )
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            ca_pem: None,
            identity_pem: None,
        }
    }
}

/// A client for these options: HTTPS with rustls (aws-lc), no proxy from
/// the environment. Only `https` URLs are fetched, and `http` ones on a
/// loopback host (a development server, a sidecar); at most three
/// redirects, each to such a URL, and a 307 or 308 (which resends a POST's
/// body, an introspected token) only within the same origin.
pub fn build(options: &HttpOptions) -> Result<reqwest::Client, String> {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        let first = attempt.previous().first().cloned();
        if attempt.previous().len() > 3 {
            attempt.error("more than 3 redirects")
        } else if let Err(e) = allowed(attempt.url()) {
            attempt.error(e)
        } else if keeps_body && first.is_some_and(|f| f.origin() != attempt.url().origin()) {
            attempt.error("a 307/308 redirect to another origin")
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(redirects)
        .no_proxy()
        .user_agent(concat!("certbound-verify/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("CA certificates: {e}"))?;
        if certs.is_empty() {
            return Err("CA certificates: no PEM certificate found".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(pem) = &options.identity_pem {
        let identity = reqwest::Identity::from_pem(pem)
            .map_err(|e| format!("client certificate and key: {e}"))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// A successful (200) answer.
pub(crate) struct Answer {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

/// Whether `url` may be fetched: `https`, or `http` to a loopback host.
pub fn allowed(url: &reqwest::Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{url}: only https (or http to a loopback address) is fetched"
        )),
    }
}

/// Sends `request`; a 200 answer of at most [`MAX_BODY`] bytes, or why not.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let (client, request) = request.build_split();
    let request = request.map_err(describe)?;
    allowed(request.url())?;
    let mut response = client.execute(request).await.map_err(describe)?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status} from {}", response.url()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(format!("answer over {MAX_BODY} bytes"));
    }
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer over {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { body, headers })
}

/// reqwest's error with its causes (the outermost alone often says only
/// "error sending request").
fn describe(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Cache-Control: max-age` of an answer (RFC 9111 §5.2.2.1); `no-store`
/// and `no-cache` count as 0. `None` when it says nothing of either.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            match name.as_str() {
                "no-store" | "no-cache" => return Some(Duration::ZERO),
                "max-age" => {
                    if let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>() {
                        found = Some(Duration::from_secs(secs));
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// What a resource server needs of the authorization server's metadata
/// (RFC 8414 §2).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The issuer, exactly as its tokens name it.
    pub issuer: String,
    /// Where its keys are.
    pub jwks_uri: String,
    /// Where tokens are introspected, if it says.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// The metadata of `issuer`: RFC 8414 §3.1's location first (the
/// well-known suffix between host and path), then OpenID Connect
/// Discovery's (appended to the issuer, which is also where certbound
/// serves a tenant's). The document must name `issuer` exactly (RFC 8414
/// §3.3), or it is refused.
pub async fn discover(client: &reqwest::Client, issuer: &str) -> Result<Metadata, String> {
    let parsed = reqwest::Url::parse(issuer).map_err(|e| format!("issuer {issuer}: {e}"))?;
    let path = parsed.path().trim_end_matches('/');
    let mut rfc8414 = parsed.clone();
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    let openid = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let mut failures = Vec::new();
    for url in [rfc8414.to_string(), openid] {
        let found = send(client.get(&url)).await.and_then(|answer| {
            let metadata: Metadata = serde_json::from_slice(&answer.body)
                .map_err(|e| format!("metadata at {url}: {e}"))?;
            if metadata.issuer != issuer {
                return Err(format!(
                    "metadata at {url} is for issuer {:?}, not {issuer:?}",
                    metadata.issuer
                ));
            }
            Ok(metadata)
        });
        match found {
            Ok(metadata) => return Ok(metadata),
            Err(e) => failures.push(e),
        }
    }
    Err(format!("no metadata for {issuer}: {}", failures.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |u: &str| allowed(&reqwest::Url::parse(u).unwrap()).is_ok();
        assert!(ok("https://as.example/jwks"));
        assert!(ok("http://127.0.0.1:9/jwks") && ok("http://127.9.9.9/") && ok("http://[::1]/"));
        assert!(ok("http://localhost:8080/") && ok("http://LOCALHOST/"));
        assert!(
            !ok("http://as.example/jwks") && !ok("http://10.0.0.1/") && !ok("ftp://127.0.0.1/")
        );
        assert!(!ok("http://localhost.evil.example/"));
    }

    #[test]
    fn max_age_directives() {
        let of = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            max_age(&h)
        };
        assert_eq!(of("max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(
            of("public, MAX-AGE = \"60\""),
            Some(Duration::from_secs(60))
        );
        assert_eq!(of("max-age=60, no-cache"), Some(Duration::ZERO));
        assert_eq!(of("no-store"), Some(Duration::ZERO));
        assert_eq!(of("public"), None);
        assert_eq!(of("max-age=soon"), None);
        assert_eq!(max_age(&HeaderMap::new()), None);
    }
}
