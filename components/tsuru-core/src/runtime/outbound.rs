//! Outbound HTTP (API.md 5): the calls to Gandalf, the provisioner, the mailer, healers
//! and service APIs. Transport failures come back as a short reason, never a panic.

/// Every outbound call is bounded (API.md 5: 30 seconds where the host allows it).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

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
