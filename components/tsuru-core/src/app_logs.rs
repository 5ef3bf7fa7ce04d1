//! App log entries (API.md 3.1 log routes, 4.1 `app_logs`). Entries outlive their app
//! but are read only from the current app's creation on (API.md 7.6).

use crate::db::{Db, DbResult};
use crate::params;
use crate::util::now_rfc3339;
use serde::Serialize;

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
    let date = now_rfc3339();
    db.transaction(|db| {
        for message in messages {
            db.execute(
                "INSERT INTO app_logs (app, date, source, message) VALUES (?, ?, ?, ?)",
                params![app, date.as_str(), source, message.as_str()],
            )?;
        }
        Ok(())
    })
}

/// Appends entries from the API itself (source `tsuru`). A failed write is reported on
/// stderr and never fails the request (API.md 4.1).
pub fn record(db: &Db, app: &str, messages: &[String]) {
    if let Err(e) = append(db, app, "tsuru", messages) {
        eprintln!("app log {app}: {e}");
    }
}

/// The last `lines` entries of `app` dated at or after `since`, oldest first.
pub fn read(
    db: &Db,
    app: &str,
    since: &str,
    source: Option<&str>,
    lines: i64,
) -> DbResult<Vec<LogEntry>> {
    let limit = if lines == 0 || lines > MAX_LINES {
        MAX_LINES
    } else {
        lines
    };
    let rows = db.query(
        "SELECT date, message, source FROM app_logs \
         WHERE app = ? AND date >= ? AND (? IS NULL OR source = ?) ORDER BY id DESC LIMIT ?",
        params![app, since, source, source, limit],
    )?;
    Ok(rows
        .iter()
        .rev()
        .map(|r| LogEntry {
            date: r.text(0),
            message: r.text(1),
            source: r.text(2),
            app: app.to_string(),
        })
        .collect())
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
        let since = "2001-01-01T00:00:00Z";
        let got: Vec<String> = read(&db, "a", since, None, 2)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["line 4", "t"]);
        let got: Vec<String> = read(&db, "a", since, Some("app"), 0)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, vec!["line 1", "line 2", "line 3", "line 4"]);
    }
}
