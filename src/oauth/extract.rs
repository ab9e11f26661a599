//! Request extraction for the OAuth endpoints: the `Authorization` header
//! (RFC 6749 §2.3.1 Basic; RFC 6750 Bearer) and the client certificate;
//! form bodies are [`super::form`]'s. Every failure is an [`OAuthError`],
//! so clients always get RFC 6749 §5.2 JSON.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::cert::ClientCertificate;
use crate::clients::Credentials;
use crate::error::OAuthError;
use crate::settings::Settings;

/// Credentials in the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    /// RFC 6749 §2.3.1: client id and secret, form-decoded.
    Basic(String, String),
    /// RFC 6750 §2.1: an access token.
    Bearer(String),
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic(id, _) => write!(f, "Basic({id:?}, ..)"),
            Self::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// The settings the request began with (attached by [`crate::app`]).
pub fn request_settings(req: &Request) -> Result<&Arc<Settings>, OAuthError> {
    req.data::<Arc<Settings>>()
        .ok_or_else(|| OAuthError::internal("no settings attached to the request"))
}

/// The credentials a request carries, taken from it once at the edge: the
/// optional `Authorization` header (documented as the Basic and Bearer
/// security schemes) and the client certificate, from the TLS connection or
/// a trusted proxy's header ([`crate::cert::presented`]). Below the
/// handlers only this plain value is seen, never the HTTP request.
///
/// Parsing never fails silently: a malformed `Authorization` header is
/// `invalid_client`, a repeated one `invalid_request`; a bad certificate
/// header is `invalid_client` when the certificate is asked for.
#[derive(Clone, Default)]
pub struct ClientAuth {
    /// The `Authorization` header.
    pub authorization: Option<Authorization>,
    certificate: Option<Result<Arc<ClientCertificate>, OAuthError>>,
    /// The client's address (through a trusted proxy: the one it names),
    /// for throttling failed user authentications.
    pub address: Option<std::net::IpAddr>,
    /// HTTP Basic as sent, without the RFC 6749 §2.3.1 form-decoding that
    /// applies to clients: a user's name and password (RFC 7617). Only
    /// when `authorization` is Basic.
    user_basic: Option<(String, String)>,
    /// A certificate header came and was not believed.
    header_ignored: bool,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("authorization", &self.authorization)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Credentials as plain values (for flows called without HTTP).
    pub fn new(
        authorization: Option<Authorization>,
        certificate: Result<Option<Arc<ClientCertificate>>, OAuthError>,
    ) -> Self {
        let user_basic = match &authorization {
            Some(Authorization::Basic(id, secret)) => Some((id.clone(), secret.clone())),
            _ => None,
        };
        Self {
            authorization,
            certificate: certificate.transpose(),
            address: None,
            user_basic,
            header_ignored: false,
        }
    }

    /// HTTP Basic `(name, password)` exactly as sent (RFC 7617), when the
    /// `Authorization` header is Basic: how a user caller is read.
    pub fn user_basic(&self) -> Option<(&str, &str)> {
        self.user_basic
            .as_ref()
            .map(|(name, password)| (name.as_str(), password.as_str()))
    }

    /// The client certificate presented, if any.
    pub fn certificate(&self) -> Result<Option<Arc<ClientCertificate>>, OAuthError> {
        self.certificate.clone().transpose()
    }

    /// The Bearer token, if the `Authorization` header carries one.
    pub fn bearer(&self) -> Option<&str> {
        match &self.authorization {
            Some(Authorization::Bearer(token)) => Some(token),
            _ => None,
        }
    }

    /// The client credentials of this request with the form's
    /// `client_id` and `client_secret`. A Bearer header is not a client
    /// authentication method.
    pub fn credentials<'a>(
        &'a self,
        form: &'a super::ClientParams,
    ) -> Result<Credentials<'a>, OAuthError> {
        let basic = match &self.authorization {
            None => None,
            Some(Authorization::Basic(id, secret)) => Some((id.as_str(), secret.as_str())),
            Some(Authorization::Bearer(_)) => {
                crate::clients::Refusal::WrongMethod.record(form.client_id.as_deref());
                return Err(OAuthError::InvalidClient(
                    "Bearer is not a client authentication method".into(),
                ));
            }
        };
        let client_id = form.client_id.as_deref();
        let certificate = self.certificate().inspect_err(|_| {
            crate::clients::Refusal::BadCertificateHeader.record(client_id.or(basic.map(|b| b.0)));
        })?;
        Ok(Credentials {
            basic,
            client_id,
            client_secret: form.client_secret.as_deref(),
            certificate,
            header_ignored: self.header_ignored,
        })
    }
}

impl<'a> ApiExtractor<'a> for ClientAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        let http = |scheme, description| MetaSecurityScheme {
            ty: "http",
            description: Some(description),
            name: None,
            key_in: None,
            scheme: Some(scheme),
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        };
        registry.create_security_scheme(
            "clientBasic",
            http(
                "basic",
                "Client id and secret (RFC 6749 §2.3.1), form-encoded before base64",
            ),
        );
        registry.create_security_scheme(
            "bearer",
            http(
                "bearer",
                "An access token holding the introspection scope (RFC 6750)",
            ),
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["clientBasic", "bearer"]
    }

    fn has_security_fallback() -> bool {
        true
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let settings = request_settings(request)?;
        let certificate =
            crate::cert::presented(request, settings.cert_header.as_ref(), &settings.proxies);
        // No certificate, and a header: the header was not believed.
        let header_ignored = matches!(certificate, Ok(None))
            && settings
                .cert_header
                .as_ref()
                .is_some_and(|h| request.headers().contains_key(h));
        let mut auth = Self::new(parse_authorization(request)?, certificate);
        auth.header_ignored = header_ignored;
        auth.address = settings.proxies.client_address(request);
        if auth.user_basic.is_some() {
            auth.user_basic = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| raw_basic(v.as_bytes()));
        }
        Ok(auth)
    }
}

pub fn parse_authorization(req: &Request) -> Result<Option<Authorization>, OAuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidRequest(
            "Authorization header repeated".into(),
        ));
    }
    parse_authorization_value(value.as_bytes()).map(Some)
}

/// Parses one `Authorization` header value: `Basic` (RFC 6749 §2.3.1) or
/// `Bearer` (RFC 6750 §2.1); anything else is `invalid_client`.
pub fn parse_authorization_value(value: &[u8]) -> Result<Authorization, OAuthError> {
    let bad = || OAuthError::InvalidClient("malformed Authorization header".into());
    let value = std::str::from_utf8(value).map_err(|_| bad())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let id = basic_decode(id).ok_or_else(bad)?;
        let secret = basic_decode(secret).ok_or_else(bad)?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Authorization::Basic(id, secret))
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Authorization::Bearer(rest.to_string()))
    } else {
        Err(bad())
    }
}

/// `Basic` credentials as RFC 7617 sends them: base64 of `user:password`,
/// split at the first colon, no further decoding.
fn raw_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// RFC 6749 §2.3.1: id and secret are form-encoded before base64, so `+`
/// is a space and `%XX` a byte; nothing else is special (a raw `&` or `=`
/// is part of the value). `None` if the result is not UTF-8.
fn basic_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

pub use super::form::{FormFields, OAuthForm};
pub use super::raw_json::{RawJson, Serialized};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_header() {
        let req = |v: &str| Request::builder().header(header::AUTHORIZATION, v).finish();
        let b64 = |s: &str| STANDARD.encode(s);
        assert_eq!(
            parse_authorization(&req(&format!("Basic {}", b64("my%20id:s%3Acret+x")))).unwrap(),
            Some(Authorization::Basic("my id".into(), "s:cret x".into()))
        );
        // Finding 13: a raw `&` or `=` is part of the secret.
        assert_eq!(
            parse_authorization(&req(&format!("Basic {}", b64("id:a&b=c%26d")))).unwrap(),
            Some(Authorization::Basic("id".into(), "a&b=c&d".into()))
        );
        assert_eq!(
            parse_authorization(&req("bearer abc")).unwrap(),
            Some(Authorization::Bearer("abc".into()))
        );
        for bad in [
            "Basic",
            "Basic !!!",
            &format!("Basic {}", b64("nocolon")),
            "Digest x",
            "Bearer ",
            &format!("Basic {}", b64("id:%FF")),
        ] {
            assert!(parse_authorization(&req(bad)).is_err(), "{bad}");
        }
    }
}
