//! The JSON body extractor: 415 unless JSON, 413 over the limit, 400 unless valid JSON, 422 for
//! a value that does not parse (the detail names the field).

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use shared::error::{ClientError, ErrorCode};

use crate::ApiError;

/// The body limit of a scope, as app data; 128 KiB when none is set.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl Default for BodyLimit {
    fn default() -> Self {
        Self(128 * 1024)
    }
}

/// A JSON body parsed into `T`, plus its canonical form (for idempotency comparisons).
#[derive(Debug)]
pub struct ValidJson<T> {
    /// The parsed value.
    pub value: T,
    /// The body as a JSON value, keys sorted.
    pub raw: serde_json::Value,
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return false;
    };
    let essence = ct
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `value` into `T`, naming the field at fault.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ClientError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ClientError::new(ErrorCode::InvalidField, e.inner().to_string())
        } else {
            ClientError::field(&path, e.inner())
        }
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<BodyLimit>>()
            .map(|l| l.0)
            .unwrap_or_else(|| BodyLimit::default().0);
        let json = is_json(req);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let too_large = || {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is over its limit of {limit} bytes"),
                )
            };
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            if !json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be application/json",
                ));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::new(
                        ErrorCode::MalformedJson,
                        format!("the body could not be read: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let raw: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {e}"),
                )
            })?;
            if !raw.is_object() {
                return Err(ApiError::new(
                    ErrorCode::InvalidField,
                    "the body must be a JSON object",
                ));
            }
            let value = from_value(raw.clone()).map_err(ApiError)?;
            Ok(Self { value, raw })
        })
    }
}
