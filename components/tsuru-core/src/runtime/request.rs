//! The request as the routes see it, independent of Spin's types so the whole dispatch
//! path can be unit-tested natively, and the URL and form encodings the API speaks.

/// Largest request body accepted (API.md 1.4).
pub const MAX_BODY: usize = 1024 * 1024;

pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// The raw path, without the query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, path_and_query: &str, headers: Vec<(String, String)>) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, parse_form(q.as_bytes())),
            None => (path_and_query, Vec::new()),
        };
        Request {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_all(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `scheme://authority` the client used, from Spin's `spin-full-url` header.
    pub fn base_url(&self) -> Option<String> {
        let full = self.header("spin-full-url")?;
        let (scheme, rest) = full.split_once("://")?;
        let authority = rest.split('/').next()?;
        Some(format!("{scheme}://{authority}"))
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (also used for query strings).
pub fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (form_decode(key), form_decode(value))
        })
        .collect()
}

fn form_decode(input: &[u8]) -> String {
    let plus_as_space: Vec<u8> = input
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    String::from_utf8_lossy(&percent_decode(&plus_as_space)).into_owned()
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            let hi = (input[i + 1] as char).to_digit(16);
            let lo = (input[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes form fields for `application/x-www-form-urlencoded` bodies.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_query_and_lowercases_headers() {
        let r = Request::new(
            "get",
            "/apps/x/env?name=A&name=B%20C&x=1+2",
            vec![("Authorization".into(), "bearer t".into())],
        );
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/apps/x/env");
        assert_eq!(r.query_all("name"), vec!["A", "B C"]);
        assert_eq!(r.query_param("x"), Some("1 2"));
        assert_eq!(r.header("authorization"), Some("bearer t"));
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode(b"a%40b.com"), b"a@b.com");
        assert_eq!(percent_decode(b"100%"), b"100%");
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }

    #[test]
    fn encodes_segments_and_forms() {
        assert_eq!(encode_segment("a b/c@d"), "a%20b%2Fc%40d");
        assert_eq!(
            encode_form(&[("app-host", "10.0.0.1"), ("name", "x y")]),
            "app-host=10.0.0.1&name=x%20y"
        );
    }

    #[test]
    fn base_url_from_spin_header() {
        let r = Request::new(
            "GET",
            "/apps",
            vec![(
                "spin-full-url".into(),
                "https://api.example.com:8443/apps?x=1".into(),
            )],
        );
        assert_eq!(
            r.base_url().as_deref(),
            Some("https://api.example.com:8443")
        );
    }
}
