//! Form bodies of the OAuth endpoints (RFC 6749 §3.1, §3.2:
//! `application/x-www-form-urlencoded`, no repeated parameter, empty
//! values treated as omitted, bounded size), decoded straight into the
//! request structs. Every failure is an [`OAuthError`].

use std::borrow::Cow;

use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use super::extract::request_settings;
use crate::error::OAuthError;

/// A form body parsed into `T` (documented by its poem-openapi `Object`
/// schema, decoded with serde: [`form_into`]).
#[derive(Debug)]
pub struct OAuthForm<T>(pub T);

/// A form's required parameters, named in the error when one is missing
/// (the framework's own parse message never reaches a client).
pub trait FormFields {
    /// Parameters that must be present and non-empty.
    const REQUIRED: &'static [&'static str];
}

const FORM: &str = "application/x-www-form-urlencoded";

pub(crate) fn is_form(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(FORM))
}

impl<'a, T: DeserializeOwned + Type + FormFields> ApiExtractor<'a> for OAuthForm<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: FORM,
                schema: T::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let parsed = async {
            let settings = request_settings(request)?;
            if !request.content_type().is_some_and(is_form) {
                return Err(OAuthError::UnsupportedMediaType);
            }
            let body = body
                .take()
                .map_err(|_| OAuthError::InvalidRequest("request body already read".into()))?;
            let bytes = read_limited(request, body, &settings.config.server).await?;
            form_into(&bytes)
        };
        Ok(Self(parsed.await?))
    }
}

/// A form body as `T`: [`parse_pairs`], `T`'s required parameters
/// present, then straight into the struct (no intermediate JSON value).
pub fn form_into<T: DeserializeOwned + FormFields>(bytes: &[u8]) -> Result<T, OAuthError> {
    let pairs = parse_pairs(bytes)?;
    if let Some(missing) = T::REQUIRED
        .iter()
        .find(|k| !pairs.iter().any(|(name, _)| name == *k))
    {
        return Err(OAuthError::InvalidRequest(
            format!("parameter {missing} is missing").into(),
        ));
    }
    let fields = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
        pairs.into_iter().map(|(k, v)| (k, FormValue(v))),
    );
    T::deserialize(fields)
        .map_err(|_| OAuthError::InvalidRequest("a parameter is malformed".into()))
}

/// Reads the body, refusing more than `server.max_body_bytes` (by
/// `Content-Length` before reading, and while reading chunked bodies) and a
/// body that takes longer than `server.body_read_timeout` to arrive.
pub(crate) async fn read_limited(
    req: &Request,
    body: poem::Body,
    server: &crate::config::ServerConfig,
) -> Result<Bytes, OAuthError> {
    let timeout = std::time::Duration::from_secs(server.body_read_timeout);
    tokio::time::timeout(timeout, read_body(req, body, server.max_body_bytes))
        .await
        .map_err(|_| OAuthError::InvalidRequest("the request body did not arrive in time".into()))?
}

async fn read_body(req: &Request, body: poem::Body, limit: usize) -> Result<Bytes, OAuthError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(OAuthError::PayloadTooLarge);
    }
    let mut stream = std::pin::pin!(body.into_bytes_stream());
    let mut buf = Vec::with_capacity(declared.map_or(1024, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| OAuthError::InvalidRequest("request body cannot be read".into()))?;
        if buf.len() + chunk.len() > limit {
            return Err(OAuthError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// A form's parameters, in the order sent.
pub type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// RFC 6749 §3.1: a parameter sent twice is `invalid_request`; one sent
/// without a value is treated as omitted. The parameters in the order
/// sent, borrowed from `bytes` where no decoding was needed.
pub fn parse_pairs(bytes: &[u8]) -> Result<Pairs<'_>, OAuthError> {
    let mut pairs: Vec<_> = split_form(bytes).collect();
    // Sorted names, so that repeats are found in O(n log n) whatever the
    // body holds.
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(OAuthError::InvalidRequest(
            format!("parameter {:?} is repeated", w[0]).into(),
        ));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    Ok(pairs)
}

/// The `name=value` pairs of a form body, decoded.
fn split_form(bytes: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    bytes
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(i) => (form_decode(&p[..i]), form_decode(&p[i + 1..])),
            None => (form_decode(p), Cow::Borrowed("")),
        })
}

/// One name or value of a form (`application/x-www-form-urlencoded`): `+`
/// is a space, `%XX` a byte, invalid UTF-8 replaced (as the WHATWG URL
/// standard and the `form_urlencoded` crate decode). Borrowed when
/// there is nothing to decode: tokens, ids and grant types.
fn form_decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|b| matches!(b, b'+' | b'%'))
        && let Ok(s) = std::str::from_utf8(raw)
    {
        return Cow::Borrowed(s);
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    Cow::Owned(
        percent_encoding::percent_decode(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// A form value for serde: a string, and `Some` of it where the field is
/// an `Option` (serde's own string deserializer refuses those).
struct FormValue<'a>(Cow<'a, str>);

impl<'de, 'a, E: serde::de::Error> serde::de::IntoDeserializer<'de, E> for FormValue<'a> {
    type Deserializer = FormValueDeserializer<'a, E>;

    fn into_deserializer(self) -> Self::Deserializer {
        FormValueDeserializer(self.0, std::marker::PhantomData)
    }
}

struct FormValueDeserializer<'a, E>(Cow<'a, str>, std::marker::PhantomData<E>);

impl<'de, E: serde::de::Error> serde::Deserializer<'de> for FormValueDeserializer<'_, E> {
    type Error = E;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// [`parse_pairs`] as a JSON object of strings (the authorization
/// endpoint's parameters).
pub fn parse_form(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, OAuthError> {
    Ok(parse_pairs(bytes)?
        .into_iter()
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(matches!(
            parse_form(b"grant_type=a&grant_type=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
        let map = parse_form(b"a=1&b=&c=%20x").unwrap();
        assert_eq!(map.len(), 2, "empty values are omitted");
        assert_eq!(map["c"], " x");
    }

    proptest::proptest! {
        /// The same pairs as the `form_urlencoded` crate (the WHATWG
        /// parser) finds, for any bytes.
        #[test]
        fn pairs_are_those_of_the_whatwg_parser(body in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(b"&=+%aZ09.-_~".to_vec()),
                proptest::num::u8::ANY,
            ],
            0..64,
        )) {
            let ours: Vec<_> = split_form(&body).collect();
            let theirs: Vec<_> = form_urlencoded::parse(&body).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn forms_become_structs() {
        use crate::oauth::token::TokenRequest;
        let r: TokenRequest = form_into(
            b"grant_type=refresh_token&client_id=my+app&refresh_token=a.b%2Ec&scope=&unknown=1",
        )
        .unwrap();
        assert_eq!(r.grant_type, "refresh_token");
        assert_eq!(r.client.client_id.as_deref(), Some("my app"));
        assert_eq!(r.refresh_token.as_deref(), Some("a.b.c"));
        assert_eq!(r.scope, None, "empty is omitted");
        assert_eq!(r.code, None);
        let missing = form_into::<TokenRequest>(b"client_id=x").unwrap_err();
        assert!(matches!(missing, OAuthError::InvalidRequest(m) if m.contains("grant_type")));
        assert!(form_into::<TokenRequest>(b"grant_type=a&grant_type=a").is_err());
    }

    #[test]
    fn content_types() {
        assert!(is_form("application/x-www-form-urlencoded"));
        assert!(is_form("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
        assert!(!is_form("application/json"));
    }
}
