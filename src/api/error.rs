//! Every API error, mapped to HTTP in one place. Clients get
//! `{"error": {"code", "message", "field", "problems"}}`; 5xx causes are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::error;

use super::types::{ErrorBody, ErrorCode, ErrorDetail};
use crate::spec::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, field: Option<String> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the document is invalid")]
    Invalid(Vec<Problem>),
    /// A request the framework refused before a handler saw it (a body that is not UTF-8 or is too
    /// large, a query that does not parse, a method the route does not take), in the same shape.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("failed to {doing}")]
    Internal {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The code of a framework rejection, by its status.
fn rejected_code(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::Timeout,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

/// The most of a rejection's plain-text body kept as its message.
const REJECTION_TEXT: usize = 4096;

/// Gives every error answer the one JSON shape: a 4xx/5xx that is not JSON already (axum's own
/// rejections answer plain text or nothing) is rewritten, its text kept as the message.
pub async fn one_shape(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), REJECTION_TEXT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_lowercase() } else { text };
    ApiError::Rejected { status, message }.into_response()
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), field: Some(field.into()) }
    }

    /// Wraps a failure the client cannot act on; `doing` says what the server was doing.
    pub fn internal(doing: impl Into<String>) -> impl FnOnce(crate::store::Error) -> Self {
        let doing = doing.into();
        move |source| Self::Internal { doing, source: Box::new(source) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, problems) = match &self {
            ApiError::BadRequest { field, .. } => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest, field.clone(), None),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None, None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None, None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None, None),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict, None, None),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::TooManyRequests, None, None),
            ApiError::Invalid(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Invalid,
                problems.first().map(|p| p.field.clone()),
                Some(problems.clone()),
            ),
            ApiError::Rejected { status, .. } => (*status, rejected_code(*status), None, None),
            ApiError::Internal { doing, source } => {
                error!(error = %source, "failed to {doing}");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, None, None)
            }
        };
        let message = match &self {
            ApiError::Invalid(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            ApiError::Internal { .. } => "internal error; the server log has the cause".to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody { error: ErrorDetail { code, message, field, problems } };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
