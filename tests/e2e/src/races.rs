//! Helpers for the isolation and abuse tests (API.md section 8): requests released at
//! the same moment from several threads, a log-stream follower that reads in the
//! background and notes when the server ended the stream, and the small decoders the
//! assertions need.

use crate::{App, RequestBuilder, Resp};
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One side of a race: a label for failure messages and the requests that one thread
/// sends, in order, once every side is ready.
pub struct Side {
    pub label: String,
    pub requests: Vec<RequestBuilder>,
}

/// A [`Side`] of one or more requests.
pub fn side(label: impl Into<String>, requests: impl IntoIterator<Item = RequestBuilder>) -> Side {
    Side {
        label: label.into(),
        requests: requests.into_iter().collect(),
    }
}

/// What one side of a race got back, in the order it sent its requests.
#[derive(Debug)]
pub struct Answers {
    pub label: String,
    pub responses: Vec<Resp>,
}

impl Answers {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
}

/// Runs every side on its own thread (`std::thread::scope`), all released together by a
/// barrier, and returns their answers in the order the sides were given.
pub fn race(sides: Vec<Side>) -> Vec<Answers> {
    let barrier = Barrier::new(sides.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = sides
            .into_iter()
            .map(|side| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let responses = side.requests.into_iter().map(|r| r.send()).collect();
                    Answers {
                        label: side.label,
                        responses,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racing thread panicked"))
            .collect()
    })
}

/// `n` copies of one request, each on its own thread, released together.
pub fn parallel(n: usize, make: impl Fn(usize) -> RequestBuilder) -> Vec<Resp> {
    race((0..n).map(|i| side(format!("#{i}"), [make(i)])).collect())
        .into_iter()
        .flat_map(|a| a.responses)
        .collect()
}

/// Asserts that no request of a race was answered with a 5xx (API.md 1.1: a client's
/// request is never a server fault, whatever runs next to it).
#[track_caller]
pub fn assert_no_server_errors(answers: &[Answers]) {
    for a in answers {
        for r in &a.responses {
            assert!(
                r.status < 500,
                "{} answered {} {:?}",
                a.label,
                r.status,
                r.text()
            );
        }
    }
}

/// The answers of the side labelled `label`.
#[track_caller]
pub fn answers_of<'a>(answers: &'a [Answers], label: &str) -> &'a Answers {
    answers
        .iter()
        .find(|a| a.label == label)
        .unwrap_or_else(|| panic!("no side labelled {label:?}"))
}

/// A `GET /apps/:app/log?...&follow=1` stream read in the background.
pub struct LogFollow {
    /// The first line: the array of entries recorded before the stream opened.
    pub first: Value,
    reader: JoinHandle<FollowEnd>,
}

/// How a followed log stream ended.
#[derive(Debug)]
pub struct FollowEnd {
    /// Every line after the first, as received (each should be a one-element array; a
    /// line that is not JSON is kept as a JSON string).
    pub lines: Vec<Value>,
    /// When the server ended the body (last chunk, or closed connection); `None` when the
    /// stream was still open when the follower gave up.
    pub ended_at: Option<Instant>,
}

impl FollowEnd {
    /// The `Message` of every entry received after the first line.
    pub fn messages(&self) -> Vec<String> {
        self.lines
            .iter()
            .flat_map(|line| match line {
                Value::Array(entries) => entries
                    .iter()
                    .map(|e| {
                        e["Message"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect(),
                other => vec![other.to_string()],
            })
            .collect()
    }
}

impl LogFollow {
    /// Opens `target` (e.g. `/apps/a/log?lines=10&follow=1`) as `token`, asserts a 200
    /// chunked reply, reads the first line, then keeps reading on a background thread
    /// for at most `give_up_after`.
    pub fn open(app: &App, token: &str, target: &str, give_up_after: Duration) -> Self {
        let deadline = Instant::now() + give_up_after;
        let stream = TcpStream::connect(app.addr()).expect("connect for the log stream");
        stream
            .set_read_timeout(Some(give_up_after))
            .expect("read timeout");
        let mut writer = stream.try_clone().expect("clone the stream");
        write!(
            writer,
            "GET {target} HTTP/1.1\r\nHost: test\r\nAuthorization: bearer {token}\r\n\r\n"
        )
        .expect("send the log request");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_ascii_lowercase());
        }
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "follow {target}: {status} {headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with("transfer-encoding:") && h.contains("chunked")),
            "a followed log is chunked: {headers:?}"
        );
        let mut pending = Vec::new();
        let first = loop {
            if let Some(line) = take_line(&mut pending) {
                break line;
            }
            match read_chunk(&mut reader) {
                Chunk::Data(d) => pending.extend_from_slice(&d),
                other => panic!("the stream of {target} ended before its first line: {other:?}"),
            }
        };
        let reader = std::thread::spawn(move || {
            // Keeps the writer half alive: dropping it would not close the socket, but
            // keeping it makes the intent plain.
            let _writer = writer;
            let mut lines = Vec::new();
            let ended_at = loop {
                while let Some(line) = take_line(&mut pending) {
                    lines.push(line);
                }
                let now = Instant::now();
                if now >= deadline {
                    break None;
                }
                let _ = reader.get_ref().set_read_timeout(Some(deadline - now));
                match read_chunk(&mut reader) {
                    Chunk::Data(d) => pending.extend_from_slice(&d),
                    Chunk::End => break Some(Instant::now()),
                    Chunk::TimedOut => break None,
                }
            };
            if !pending.is_empty() {
                lines.push(Value::String(
                    String::from_utf8_lossy(&pending).into_owned(),
                ));
            }
            FollowEnd { lines, ended_at }
        });
        Self { first, reader }
    }

    /// Waits for the background reader (the end of the stream, or its deadline).
    pub fn finish(self) -> FollowEnd {
        self.reader.join().expect("the log follower panicked")
    }
}

#[derive(Debug)]
enum Chunk {
    Data(Vec<u8>),
    /// The last chunk, or the server closed the connection.
    End,
    /// Nothing arrived before the read timeout.
    TimedOut,
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn read_chunk(reader: &mut impl BufRead) -> Chunk {
    let mut size_line = String::new();
    match reader.read_line(&mut size_line) {
        Ok(0) => return Chunk::End,
        Ok(_) => {}
        Err(e) if is_timeout(&e) => return Chunk::TimedOut,
        Err(_) => return Chunk::End,
    }
    let size = size_line.trim().split(';').next().unwrap_or("");
    let Ok(size) = usize::from_str_radix(size, 16) else {
        return Chunk::End;
    };
    if size == 0 {
        return Chunk::End;
    }
    let mut data = vec![0; size + 2];
    match reader.read_exact(&mut data) {
        Ok(()) => {
            data.truncate(size);
            Chunk::Data(data)
        }
        Err(e) if is_timeout(&e) => Chunk::TimedOut,
        Err(_) => Chunk::End,
    }
}

fn take_line(pending: &mut Vec<u8>) -> Option<Value> {
    let end = pending.iter().position(|b| *b == b'\n')?;
    let line: Vec<u8> = pending.drain(..=end).collect();
    Some(
        serde_json::from_slice(&line)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&line).into_owned())),
    )
}

/// Decodes `%XX` escapes (no `+` rule: this is for URL paths).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The percent-decoded segments of a request target's path (`/a/b%2Fc` → `["a", "b/c"]`).
pub fn path_segments(target: &str) -> Vec<String> {
    let path = target.split('?').next().unwrap_or("");
    path.split('/')
        .skip(1)
        .map(percent_decode)
        .collect::<Vec<_>>()
}

/// `Basic base64(user:password)`, as a service API receives its credentials (API.md 5.1).
pub fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// The `<n>` of a message `<prefix><n> seconds.\n`, when the body has exactly that form.
pub fn seconds_in(body: &str, prefix: &str) -> Option<u64> {
    let n = body.strip_prefix(prefix)?.strip_suffix(" seconds.\n")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_known_values() {
        assert_eq!(basic_auth("tsuru", "s3cret"), "Basic dHN1cnU6czNjcmV0");
        assert_eq!(basic_auth("a", "b"), "Basic YTpi");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
    }

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(
            path_segments("/api/resources/db/hostname/10.0.0.1%2Fx%3fy"),
            vec!["api", "resources", "db", "hostname", "10.0.0.1/x?y"]
        );
        assert_eq!(percent_decode("a%"), "a%");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn seconds_are_parsed() {
        let p = "Try again in ";
        assert_eq!(seconds_in("Try again in 12 seconds.\n", p), Some(12));
        assert_eq!(seconds_in("Try again in x seconds.\n", p), None);
        assert_eq!(seconds_in("Try again in 1 seconds.", p), None);
    }
}
