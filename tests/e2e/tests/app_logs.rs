//! App logs beyond the basics of `apps.rs`: following a log (API.md 3.1: the array as
//! the first line, then each later entry as a one-element array on its own line,
//! streamed while the client reads) and the isolation of a re-created app (API.md 7.6).

use e2e::app;
use e2e::apps::create_app;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads one chunk of a chunked body; `None` at the end of the body.
fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size_line = String::new();
    reader.read_line(&mut size_line).ok()?;
    let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).ok()?;
    data.truncate(size);
    (size > 0).then_some(data)
}

/// Collects body lines until `n` complete lines arrived.
fn read_lines(reader: &mut impl BufRead, pending: &mut Vec<u8>, n: usize) -> Vec<Value> {
    let mut lines = Vec::new();
    while lines.len() < n {
        if let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).expect("each line is JSON"));
            continue;
        }
        let chunk = read_chunk(reader).expect("the stream is still open");
        pending.extend_from_slice(&chunk);
    }
    lines
}

#[test]
fn following_a_log_streams_new_entries_until_the_client_leaves() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    let append = |body: Value| {
        let resp = app
            .post("/apps/web/log?source=web")
            .bearer(&alice)
            .json(&body)
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text());
    };
    append(json!(["before"]));

    let stream = TcpStream::connect(app.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    write!(
        writer,
        "GET /apps/web/log?lines=10&source=web&follow=1 HTTP/1.1\r\nHost: test\r\nAuthorization: bearer {alice}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.to_ascii_lowercase());
    }
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("transfer-encoding: chunked")),
        "{headers:?}"
    );
    assert!(headers
        .iter()
        .any(|h| h.starts_with("content-type: application/json")));

    let mut pending = Vec::new();
    let first = read_lines(&mut reader, &mut pending, 1);
    assert_eq!(first[0].as_array().unwrap().len(), 1);
    assert_eq!(first[0][0]["Message"], "before");

    let started = Instant::now();
    append(json!(["one\ntwo"]));
    append(json!(["three"]));
    let later = read_lines(&mut reader, &mut pending, 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "entries arrive while the client waits"
    );
    let messages: Vec<&str> = later
        .iter()
        .map(|line| {
            let entries = line.as_array().expect("one-element array");
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0]["Source"], "web");
            assert_eq!(entries[0]["AppName"], "web");
            entries[0]["Message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(messages, vec!["one", "two", "three"]);

    // The client goes away; the host keeps serving and the component stops following.
    drop(reader);
    drop(writer);
    let resp = app.get("/apps/web/log?lines=10").bearer(&alice).send();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json().as_array().unwrap().len(), 4);
}

#[test]
fn a_recreated_app_never_reads_its_predecessors_entries() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    let post = app
        .post("/apps/web/log")
        .bearer(&alice)
        .json(&json!(["old tenant secret"]))
        .send();
    assert_eq!(post.status, 200);
    assert_eq!(app.delete("/apps/web").bearer(&alice).send().status, 200);
    // Re-created at once, within the same second as the old entries.
    create_app(&app, &alice, "web");
    let messages = e2e::apps::log_messages(&app, &alice, "web", "?lines=0");
    assert!(
        !messages.iter().any(|m| m == "old tenant secret"),
        "{messages:?}"
    );
}
