//! The one error type of the API: a status code and the exact message the client sees.

use std::fmt;

/// An error answered to the client as `status` with body `message\n` (API.md 1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(412, message)
    }
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, message)
    }
    /// `400 Invalid JSON in request body.`, the generic answer to a malformed JSON body.
    pub fn invalid_json() -> Self {
        Self::bad_request("Invalid JSON in request body.")
    }
    pub fn invalid_token() -> Self {
        Self::unauthorized("Invalid token")
    }
    pub fn body_too_large() -> Self {
        Self::new(413, "Request body too large")
    }
    /// A store or other internal fault: the detail goes to stderr, never to the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        eprintln!("internal error: {detail}");
        Self::new(500, "Internal server error")
    }
    pub fn invalid_variable(name: &str) -> Self {
        eprintln!("variable {name} has an invalid value");
        Self::new(500, format!("Invalid value for variable \"{name}\""))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}
