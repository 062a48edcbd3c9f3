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
    #[error("the document is invalid")]
    Invalid(Vec<Problem>),
    #[error("failed to {doing}")]
    Internal {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

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
            ApiError::Invalid(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Invalid,
                problems.first().map(|p| p.field.clone()),
                Some(problems.clone()),
            ),
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
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
