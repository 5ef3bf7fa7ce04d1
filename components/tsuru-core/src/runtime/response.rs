//! The response a route answers (API.md 1.5, 1.6): JSON, text, empty, an error as
//! `message\n`, or a body that goes on streaming after the handler returns.

use crate::runtime::context::Ctx;
use crate::runtime::error::ApiError;
use serde::Serialize;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// More body to send after `body`, produced while the client waits (log follow).
    pub stream: Option<BodyStream>,
}

/// Continues a response body with the request's context. It writes chunks through the
/// given function, which returns `false` once the client has gone away.
pub type BodyStream = Box<dyn FnOnce(&Ctx, &mut dyn FnMut(&[u8]) -> bool)>;

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    fn with(status: u16, content_type: Option<&str>, body: Vec<u8>) -> Self {
        let headers = content_type
            .map(|ct| vec![("content-type".to_string(), ct.to_string())])
            .unwrap_or_default();
        Response {
            status,
            headers,
            body,
            stream: None,
        }
    }

    /// `200` with one JSON value, no trailing newline.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::with(200, Some("application/json"), body),
            Err(e) => Self::from(ApiError::internal(e)),
        }
    }

    /// `200` with exactly this text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::with(200, Some(TEXT), text.into().into_bytes())
    }

    /// `200` with an empty body.
    pub fn empty() -> Self {
        Self::with(200, None, Vec::new())
    }

    pub fn no_content() -> Self {
        Self::with(204, None, Vec::new())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// This response, with `stream` continuing its body after `body` is sent.
    pub fn streaming(mut self, stream: BodyStream) -> Self {
        self.stream = Some(stream);
        self
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        let mut body = e.message.into_bytes();
        body.push(b'\n');
        Response::with(e.status, Some(TEXT), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_end_with_newline() {
        let r = Response::from(ApiError::not_found("Team not found"));
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"Team not found\n");
        assert_eq!(r.headers[0].1, "text/plain; charset=utf-8");
    }
}
