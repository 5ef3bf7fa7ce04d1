//! App log entries (API.md 3.1 log routes, 4.1 `app_logs`). Entries outlive their app
//! but are read only from the current app's creation on (API.md 7.6).

use crate::db::{Db, DbResult};
use crate::params;
use crate::util::now_rfc3339;
use serde::Serialize;
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

fn entry(filter: &LogFilter, row: &crate::db::Row) -> LogEntry {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::native::NativeDb;
    use crate::schema;

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
