//! The Spin side: the [`Platform`] backed by Spin's SQLite, key-value, variables and
//! outbound HTTP, and [`serve`], which every component's `#[http_component]` calls.
//! All calls here are blocking WASI calls, so handlers stay plain synchronous code.

use crate::runtime::context::Platform;
use crate::runtime::db::{DbError, DbResult, Row, SqlBackend, Value};
use crate::runtime::kv::KvBackend;
use crate::runtime::outbound::{OpenReply, OutboundRequest, ReplyBody};
use crate::runtime::request::Request;
use crate::runtime::router::{dispatch, BodyError, Route};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value as SpinValue};
use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};

/// Spin's label for both the database and the key-value store.
const STORE: &str = "default";
/// WASI streams hand out at most this much per call; larger reads just loop.
const CHUNK: u64 = 64 * 1024;
/// `blocking-write-and-flush` accepts at most 4096 bytes per call.
const WRITE_CHUNK: usize = 4096;

struct SpinPlatform;

static PLATFORM: SpinPlatform = SpinPlatform;

struct SpinDb(Connection);

impl SqlBackend for SpinDb {
    fn execute(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let params: Vec<SpinValue> = params
            .iter()
            .map(|v| match v {
                Value::Null => SpinValue::Null,
                Value::Integer(i) => SpinValue::Integer(*i),
                Value::Real(f) => SpinValue::Real(*f),
                Value::Text(s) => SpinValue::Text(s.clone()),
                Value::Blob(b) => SpinValue::Blob(b.clone()),
            })
            .collect();
        let result = self
            .0
            .execute(sql, &params)
            .map_err(|e| DbError(format!("{e:?}")))?;
        Ok(result
            .rows
            .into_iter()
            .map(|row| {
                Row(row
                    .values
                    .into_iter()
                    .map(|v| match v {
                        SpinValue::Null => Value::Null,
                        SpinValue::Integer(i) => Value::Integer(i),
                        SpinValue::Real(f) => Value::Real(f),
                        SpinValue::Text(s) => Value::Text(s),
                        SpinValue::Blob(b) => Value::Blob(b),
                    })
                    .collect())
            })
            .collect())
    }
}

struct SpinKv(Store);

impl KvBackend for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key).map_err(|e| format!("{e:?}"))
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.0.set(key, value).map_err(|e| format!("{e:?}"))
    }
    fn delete(&self, key: &str) -> Result<(), String> {
        self.0.delete(key).map_err(|e| format!("{e:?}"))
    }
}

impl Platform for SpinPlatform {
    fn open_db(&self) -> Result<Box<dyn SqlBackend>, String> {
        let conn = Connection::open(STORE).map_err(|e| format!("{e:?}"))?;
        Ok(Box::new(SpinDb(conn)))
    }

    fn open_kv(&self) -> Result<Box<dyn KvBackend>, String> {
        let store = Store::open(STORE).map_err(|e| format!("{e:?}"))?;
        Ok(Box::new(SpinKv(store)))
    }

    fn variable(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }

    fn open(&self, request: &OutboundRequest) -> Result<OpenReply, String> {
        open(request)
    }
}

/// A component's Spin entry point, serving its route table: `spin_component!(ROUTES);`.
/// The export exists only in the wasm build, so that native test builds can link every
/// component's route table into one binary.
#[macro_export]
macro_rules! spin_component {
    ($routes:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[spin_sdk::http_component]
        fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
            $crate::runtime::spin::serve($routes, req, out)
        }
    };
}

/// Answers one incoming request with `routes`: the whole body of every component.
pub fn serve(routes: &[Route], incoming: IncomingRequest, out: ResponseOutparam) {
    let method = method_name(&incoming.method());
    let path = incoming
        .path_with_query()
        .unwrap_or_else(|| "/".to_string());
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let request = Request::new(&method, &path, headers);
    let mut read_body = |limit: usize| read_incoming_body(&incoming, limit);
    let mut answer = dispatch(routes, &PLATFORM, request, &mut read_body);
    let response = &answer.response;

    let headers = types::Fields::new();
    for (name, value) in &response.headers {
        let _ = headers.append(name, value.as_bytes());
    }
    // A streamed body has no known length; the host sends it chunked.
    if method != "HEAD" && response.stream.is_none() {
        let _ = headers.append(
            "content-length",
            &response.body.len().to_string().into_bytes(),
        );
    }
    let outgoing = types::OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status);
    let Ok(body) = outgoing.body() else {
        return;
    };
    out.set(outgoing);
    if let Ok(stream) = body.write() {
        // An empty write asks whether the client is still there.
        let mut write = |data: &[u8]| {
            if data.is_empty() {
                return stream.check_write().is_ok();
            }
            data.chunks(WRITE_CHUNK)
                .all(|chunk| stream.blocking_write_and_flush(chunk).is_ok())
        };
        if write(&answer.response.body) {
            answer.finish_stream(&mut write);
        }
        drop(stream);
    }
    let _ = types::OutgoingBody::finish(body, None);
}

fn method_name(method: &types::Method) -> String {
    match method {
        types::Method::Get => "GET".into(),
        types::Method::Head => "HEAD".into(),
        types::Method::Post => "POST".into(),
        types::Method::Put => "PUT".into(),
        types::Method::Delete => "DELETE".into(),
        types::Method::Connect => "CONNECT".into(),
        types::Method::Options => "OPTIONS".into(),
        types::Method::Trace => "TRACE".into(),
        types::Method::Patch => "PATCH".into(),
        types::Method::Other(other) => other.to_ascii_uppercase(),
    }
}

fn read_incoming_body(incoming: &IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    let body = incoming
        .consume()
        .map_err(|_| BodyError::Broken("body already consumed".into()))?;
    let stream = body
        .stream()
        .map_err(|_| BodyError::Broken("body stream unavailable".into()))?;
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(CHUNK) {
            Ok(chunk) => {
                data.extend_from_slice(&chunk);
                if data.len() > limit {
                    return Err(BodyError::TooLarge);
                }
            }
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(BodyError::Broken(format!("{e:?}"))),
        }
    }
    drop(stream);
    types::IncomingBody::finish(body);
    Ok(data)
}

/// The body of an outbound reply. Fields drop in order: the stream before its body.
struct IncomingReply {
    stream: wasi::io::streams::InputStream,
    _body: types::IncomingBody,
}

impl ReplyBody for IncomingReply {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            match self.stream.blocking_read(CHUNK) {
                // An empty read is not the end: the stream had nothing yet.
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(wasi::io::streams::StreamError::Closed) => return Ok(None),
                Err(e) => return Err(format!("reading response body: {e:?}")),
            }
        }
    }
}

/// Sends a request and waits for the reply's status; its body is read later.
fn open(request: &OutboundRequest) -> Result<OpenReply, String> {
    let (scheme, rest) = request
        .url
        .split_once("://")
        .ok_or_else(|| format!("invalid URL {}", request.url))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let headers = types::Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| format!("invalid header {name}: {e:?}"))?;
    }
    // Without a length Spin sends a body, even an empty one, chunked, which some
    // servers misread (`../shared/notes/spin-facts.md`).
    if !request.body.is_empty() || !matches!(request.method.as_str(), "GET" | "HEAD") {
        let _ = headers.append(
            "content-length",
            &request.body.len().to_string().into_bytes(),
        );
    }
    let outgoing = types::OutgoingRequest::new(headers);
    let method = match request.method.as_str() {
        "GET" => types::Method::Get,
        "POST" => types::Method::Post,
        "PUT" => types::Method::Put,
        "DELETE" => types::Method::Delete,
        other => types::Method::Other(other.to_string()),
    };
    let scheme = match scheme {
        "http" => types::Scheme::Http,
        "https" => types::Scheme::Https,
        other => types::Scheme::Other(other.to_string()),
    };
    outgoing
        .set_method(&method)
        .and_then(|_| outgoing.set_scheme(Some(&scheme)))
        .and_then(|_| outgoing.set_authority(Some(authority)))
        .and_then(|_| outgoing.set_path_with_query(Some(&path)))
        .map_err(|_| format!("invalid URL {}", request.url))?;
    let body = outgoing.body().map_err(|_| "request body unavailable")?;
    let timeout_ns = request.timeout_ms.saturating_mul(1_000_000);
    let options = types::RequestOptions::new();
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    // The request goes out first and its body after: the body's stream holds only a few
    // KiB until the host sends them, so a body written before `handle` never finishes.
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(describe)?;
    let sent = match body.write() {
        Ok(stream) => request
            .body
            .chunks(WRITE_CHUNK)
            .try_for_each(|chunk| stream.blocking_write_and_flush(chunk))
            .map_err(|e| format!("sending request body: {e:?}")),
        Err(()) => Err("request body unavailable".to_string()),
    };
    if let Err(reason) = sent {
        // A body stops going out when the request failed (refused, timed out): say why.
        future.subscribe().block();
        return Err(match future.get() {
            Some(Ok(Err(e))) => describe(e),
            _ => reason,
        });
    }
    types::OutgoingBody::finish(body, None).map_err(describe)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(describe(e)),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|_| "response body unavailable")?;
    let stream = body.stream().map_err(|_| "response body unavailable")?;
    Ok(OpenReply {
        status,
        body: Box::new(IncomingReply {
            stream,
            _body: body,
        }),
    })
}

/// A short transport-failure reason for API.md 1.5's `<reason>`.
fn describe(error: types::ErrorCode) -> String {
    match error {
        types::ErrorCode::HttpRequestDenied => "host not allowed".into(),
        types::ErrorCode::ConnectionRefused => "connection refused".into(),
        types::ErrorCode::ConnectionTimeout
        | types::ErrorCode::ConnectionReadTimeout
        | types::ErrorCode::HttpResponseTimeout => "timeout".into(),
        types::ErrorCode::DnsError(_) => "host not found".into(),
        other => format!("{other:?}"),
    }
}
