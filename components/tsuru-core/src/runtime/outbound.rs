//! Outbound HTTP (API.md 5): the calls to Gandalf, the provisioner, the mailer, healers
//! and service APIs. Transport failures come back as a short reason, never a panic.

use std::time::{Duration, Instant};

/// Every outbound call is bounded (API.md 5: 30 seconds where the host allows it; for a
/// streamed reply, between two pieces of it).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Replies are read up to this size; a larger one is a transport failure (API.md 8.4):
/// an outside system gets no unbounded memory.
pub const MAX_REPLY: usize = 1024 * 1024;

/// A streamed reply (a deploy's output) is passed on for at most this long, and at most
/// this much of it: an outside system gets no unbounded time or bandwidth either.
pub const STREAM_FOR: Duration = Duration::from_secs(30 * 60);
pub const MAX_STREAM: usize = 64 * 1024 * 1024;

/// The body of a reply, read as it arrives.
pub trait ReplyBody {
    /// The next piece of the body; `None` at its end; `Err` a transport failure.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String>;
}

/// A reply whose status has arrived and whose body has not been read yet.
pub struct OpenReply {
    pub status: u16,
    pub body: Box<dyn ReplyBody>,
}

impl OpenReply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Reads the whole body, at most [`MAX_REPLY`] bytes.
    pub fn read_all(mut self) -> Result<OutboundResponse, String> {
        let mut data = Vec::new();
        while let Some(chunk) = self.body.next_chunk()? {
            data.extend_from_slice(&chunk);
            if data.len() > MAX_REPLY {
                return Err("reply too large".into());
            }
        }
        Ok(OutboundResponse {
            status: self.status,
            body: data,
        })
    }

    /// Passes the body on to `write` as it arrives, within [`STREAM_FOR`] and
    /// [`MAX_STREAM`]; `write` answers `false` when the client has gone away.
    pub fn pump(mut self, write: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), String> {
        let deadline = Instant::now() + STREAM_FOR;
        let mut sent = 0;
        while let Some(chunk) = self.body.next_chunk()? {
            sent += chunk.len();
            if sent > MAX_STREAM {
                return Err("output too large".into());
            }
            if !write(&chunk) {
                return Err("the client went away".into());
            }
            if Instant::now() > deadline {
                return Err("timeout".into());
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as API.md 1.5's `<reason>`: trimmed and cut to 1024 bytes.
    pub fn reason(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let trimmed = text.trim();
        let mut end = trimmed.len().min(1024);
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        trimmed[..end].to_string()
    }
}

impl OutboundRequest {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        OutboundRequest {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        let mut req = self.header("content-type", "application/json");
        req.body = value.to_string().into_bytes();
        req
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// Joins a base URL (trailing `/` dropped) and a path that starts with `/`.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_trimmed_and_cut() {
        let r = OutboundResponse {
            status: 500,
            body: format!("  {}  ", "é".repeat(600)).into_bytes(),
        };
        let reason = r.reason();
        assert!(reason.len() <= 1024);
        assert!(reason.starts_with('é'));
        assert!(!r.is_success());
    }

    #[test]
    fn joins_urls() {
        assert_eq!(join_url("http://g:8000/", "/user"), "http://g:8000/user");
        assert_eq!(join_url("http://g:8000", "/user"), "http://g:8000/user");
    }
}
