//! JSON answers written without the framework's JSON value tree:
//! documents serialised once (discovery, JWKS) and answered as they are
//! ([`RawJson`]), and the OAuth answers, serialised straight from their
//! struct with serde into one buffer ([`Serialized`]). Both are documented
//! in the OpenAPI description with their schema.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

/// JSON serialised once at startup, documented with the schema of `T`.
pub struct RawJson<T>(pub Bytes, PhantomData<T>);

impl<T> RawJson<T> {
    /// Wraps serialised JSON.
    pub fn new(bytes: Bytes) -> Self {
        Self(bytes, PhantomData)
    }
}

impl<T: Type> poem_openapi::payload::Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for RawJson<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("application/json")
            .body(self.0)
    }
}

/// `T` serialised with serde when answered (the OAuth hot paths: one
/// buffer for the body, no intermediate `serde_json::Value`).
pub struct Serialized<T>(pub T);

/// The media type of [`Serialized`] answers.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

impl<T: Type> poem_openapi::payload::Payload for Serialized<T> {
    const CONTENT_TYPE: &'static str = JSON_UTF8;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> IntoResponse for Serialized<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder().content_type(JSON_UTF8).body(body),
            // Not reachable for these structs (string keys only); never a
            // half-written answer.
            Err(_) => crate::error::OAuthError::internal("answer not serialisable").into_response(),
        }
    }
}

impl<T: Type> poem_openapi::ApiResponse for RawJson<T> {
    fn meta() -> poem_openapi::registry::MetaResponses {
        poem_openapi::registry::MetaResponses {
            responses: vec![poem_openapi::registry::MetaResponse {
                description: "The document",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json",
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
