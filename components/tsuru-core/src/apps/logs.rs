//! App log entries (API.md 3.1 log routes, 4.1 `app_logs`). Entries outlive their app
//! but are read only from the current app's creation on (API.md 7.6).

use crate::apps::records::{load_for_caller, load_for_user};
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult, Row};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// `lines` beyond this, or `0`, mean this many (API.md 7.6).
pub const MAX_LINES: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    #[serde(rename = "Date")]
    pub date: String,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Source")]
    pub source: String,
    #[serde(rename = "AppName")]
    pub app: String,
}

/// Appends entries dated now, in one transaction.
pub fn append(db: &Db, app: &str, source: &str, messages: &[String]) -> DbResult<()> {
    db.transaction(|db| insert(db, app, source, messages))
}

/// Inserts entries dated now, inside the caller's transaction.
fn insert(db: &Db, app: &str, source: &str, messages: &[String]) -> DbResult<()> {
    let date = now_rfc3339();
    for message in messages {
        db.execute(
            "INSERT INTO app_logs (app, date, source, message) VALUES (?, ?, ?, ?)",
            params![app, date.as_str(), source, message.as_str()],
        )?;
    }
    Ok(())
}

/// Like [`record`], inside the caller's transaction: a failed insert is reported and
/// does not undo the caller's writes (SQLite rolls back only the failed statement).
pub fn record_within(db: &Db, app: &str, messages: &[String]) {
    if let Err(e) = insert(db, app, "tsuru", messages) {
        eprintln!("app log {app}: {e}");
    }
}

/// Appends entries from the API itself (source `tsuru`). A failed write is reported on
/// stderr and never fails the request (API.md 4.1).
pub fn record(db: &Db, app: &str, messages: &[String]) {
    if let Err(e) = append(db, app, "tsuru", messages) {
        eprintln!("app log {app}: {e}");
    }
}

/// Which entries of an app a reader sees: the current app's own (ids after the newest
/// entry that existed when it was created), optionally of one source.
pub struct LogFilter<'a> {
    pub app: &'a str,
    pub after: i64,
    pub source: Option<&'a str>,
}

fn entry(filter: &LogFilter, row: &Row) -> LogEntry {
    LogEntry {
        date: row.text(0),
        message: row.text(1),
        source: row.text(2),
        app: filter.app.to_string(),
    }
}

/// The last `lines` entries up to id `until` (inclusive), oldest first.
pub fn read(db: &Db, filter: &LogFilter, lines: i64, until: i64) -> DbResult<Vec<LogEntry>> {
    let limit = if lines == 0 || lines > MAX_LINES {
        MAX_LINES
    } else {
        lines
    };
    let rows = db.query(
        "SELECT date, message, source FROM app_logs WHERE app = ? AND id > ? \
         AND (? IS NULL OR source = ?) AND id <= ? ORDER BY id DESC LIMIT ?",
        params![
            filter.app,
            filter.after,
            filter.source,
            filter.source,
            until,
            limit
        ],
    )?;
    Ok(rows.iter().rev().map(|r| entry(filter, r)).collect())
}

/// The id of the app's newest entry (0 when none): a follow sends what comes after it.
pub fn newest_id(db: &Db, app: &str) -> DbResult<i64> {
    Ok(db
        .query_opt(
            "SELECT COALESCE(MAX(id), 0) FROM app_logs WHERE app = ?",
            params![app],
        )?
        .map_or(0, |r| r.int(0)))
}

/// How long a follow lasts, and how often it looks for new entries (API.md 3.1).
pub const FOLLOW_FOR: Duration = Duration::from_secs(60);
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Sends each entry appended after id `after` as a one-element array on its own line,
/// until [`FOLLOW_FOR`] has passed or the client has gone away (`write` says `false`;
/// an empty write only asks whether the client is still there).
pub fn follow(db: &Db, filter: &LogFilter, mut after: i64, write: &mut dyn FnMut(&[u8]) -> bool) {
    let deadline = Instant::now() + FOLLOW_FOR;
    after = after.max(filter.after);
    while Instant::now() < deadline && write(&[]) {
        std::thread::sleep(FOLLOW_EVERY);
        let rows = match db.query(
            "SELECT date, message, source, id FROM app_logs WHERE app = ? \
             AND (? IS NULL OR source = ?) AND id > ? ORDER BY id",
            params![filter.app, filter.source, filter.source, after],
        ) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("following the log of {}: {e}", filter.app);
                return;
            }
        };
        for row in &rows {
            after = row.int(3);
            let mut line = serde_json::to_vec(&[entry(filter, row)]).unwrap_or_default();
            line.push(b'\n');
            if !write(&line) {
                return;
            }
        }
    }
}

// The routes: reading (and following) an app's log, and appending to it.

/// `GET /apps/:app/log`
pub fn read_log(ctx: &mut Ctx) -> ApiResult<Response> {
    let lines = match ctx.req.query_param("lines") {
        None => return Err(ApiError::bad_request("Parameter \"lines\" is mandatory.")),
        Some(value) if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(ApiError::bad_request(
                "Parameter \"lines\" must be an integer.",
            ))
        }
        // All digits: only an overflow fails to parse, and that many means the maximum.
        Some(value) => value.parse::<i64>().unwrap_or(MAX_LINES),
    };
    let source = ctx
        .req
        .query_param("source")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let app = load_for_user(ctx, ctx.param("app"))?;
    let filter = LogFilter {
        app: &app.name,
        after: app.logs_after,
        source: source.as_deref(),
    };
    let db = ctx.db()?;
    let following = ctx.req.query_param("follow") == Some("1");
    let newest = if following {
        newest_id(db, &app.name)?
    } else {
        i64::MAX
    };
    let entries = read(db, &filter, lines, newest)?;
    audit::record(ctx, "app-log", &app.name, json!({}));
    if !following {
        return Ok(Response::json(&entries));
    }
    // The array as the first line, then every later entry on its own line (API.md 3.1).
    let mut first = Response::json(&entries);
    first.body.push(b'\n');
    Ok(first.streaming(Box::new(move |ctx, write| {
        let filter = LogFilter {
            app: &app.name,
            after: app.logs_after,
            source: source.as_deref(),
        };
        match ctx.db() {
            Ok(db) => follow(db, &filter, newest, write),
            Err(e) => eprintln!("following the log of {}: {e}", app.name),
        }
    })))
}

/// `POST /apps/:app/log`
pub fn append_log(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("app").to_string();
    if matches!(ctx.caller()?, Caller::App(token) if token.app != name) {
        return Err(ApiError::invalid_token());
    }
    let app = load_for_caller(ctx, &name)?;
    let messages: Vec<String> =
        ctx.json_body("You must provide the log messages as a JSON array of strings.")?;
    let source = ctx
        .req
        .query_param("source")
        .filter(|s| !s.is_empty())
        .unwrap_or("app");
    let lines: Vec<String> = messages
        .iter()
        .flat_map(|m| m.split('\n'))
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    append(ctx.db()?, &app.name, source, &lines)?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;
    use crate::runtime::schema;

    #[test]
    fn reads_the_last_lines_oldest_first() {
        let db = NativeDb::memory();
        schema::migrate(&db, &[], "now").unwrap();
        db.execute(
            "INSERT INTO app_logs (app, date, source, message) VALUES ('a', '2000-01-01T00:00:00Z', 'app', 'old')",
            &[],
        )
        .unwrap();
        let lines: Vec<String> = (1..=4).map(|i| format!("line {i}")).collect();
        append(&db, "a", "app", &lines).unwrap();
        record(&db, "a", &["t".to_string()]);
        append(&db, "b", "app", &["other".to_string()]).unwrap();
        let all = LogFilter {
            app: "a",
            after: 1,
            source: None,
        };
        let got: Vec<String> = read(&db, &all, 2, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["line 4", "t"]);
        let app_only = LogFilter {
            source: Some("app"),
            ..all
        };
        let got: Vec<String> = read(&db, &app_only, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["line 1", "line 2", "line 3", "line 4"]);
    }
}
