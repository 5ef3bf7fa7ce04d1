//! App log entries (API.md 3.1 log routes, 7.6, 8.5, 8.8, 9.4). Entries belong to their
//! app's id and go with it, so an app created later with the same name never reads them;
//! each app numbers its own entries (`seq`), which keeps retention one index range.

use crate::apps::records::{
    load_for_with, load_with, not_found, Extra, WriteTarget, ACCESS, APP_COLUMN_COUNT,
};
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult, Row, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// `lines` beyond this, or `0`, mean this many (API.md 7.6).
pub const MAX_LINES: i64 = 10_000;

/// The longest entry, in bytes. A longer message is kept whole, as consecutive entries
/// of at most this size cut at character boundaries (as container runtimes split long
/// lines), so that `log_retention` bounds the bytes an app's log holds, not only its
/// entries.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// `message` in consecutive pieces of at most [`MAX_ENTRY_BYTES`], cut at character
/// boundaries; an empty message is one empty piece.
fn pieces(message: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(message);
    std::iter::from_fn(move || {
        let current = rest?;
        if current.len() <= MAX_ENTRY_BYTES {
            rest = None;
            return Some(current);
        }
        let cut = (1..=MAX_ENTRY_BYTES)
            .rev()
            .find(|at| current.is_char_boundary(*at))
            .unwrap_or(MAX_ENTRY_BYTES);
        rest = Some(&current[cut..]);
        Some(&current[..cut])
    })
}

/// Entries one insert statement carries (5 parameters each, well under SQLite's limit).
const INSERT_BATCH: usize = 200;

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

/// Appends entries dated now to app `app_id` (inside the caller's transaction, or in its
/// own), keeping at most `retention` entries of the app (API.md 8.8). An app removed
/// meanwhile gets nothing.
pub fn append(
    db: &Db,
    app_id: i64,
    source: &str,
    messages: &[String],
    retention: i64,
) -> DbResult<()> {
    insert(
        db,
        "a.id = ?1",
        vec![Value::from(app_id)],
        source,
        messages,
        retention,
    )?;
    Ok(())
}

/// Appends entries to the app of `target`, whose insert checks it: `404`, `403`, or the
/// entries stored.
fn append_to(
    db: &Db,
    target: &WriteTarget,
    source: &str,
    messages: &[String],
    retention: i64,
) -> ApiResult<()> {
    let stored = insert(
        db,
        WriteTarget::CONDITION,
        target.params(),
        source,
        messages,
        retention,
    )?;
    if !stored {
        target.explain(db)?;
    }
    Ok(())
}

/// Inserts `messages` into the app whose row `a` meets `condition` (on `params`, which
/// take the first `?` numbers); whether any was stored. Each entry is numbered after the
/// app's newest, in the insert itself: no counter row to update, one statement fewer
/// under the write lock.
///
/// Old entries go in slices of a hundredth of `retention`: whenever an append's numbers
/// pass a multiple of the slice, the app is trimmed so that the appends up to the next
/// multiple fit without a delete of their own, and no app ever holds more than
/// `retention`.
fn insert(
    db: &Db,
    condition: &str,
    params: Vec<Value>,
    source: &str,
    messages: &[String],
    retention: i64,
) -> DbResult<bool> {
    let messages: Vec<&str> = messages.iter().flat_map(|m| pieces(m)).collect();
    if messages.is_empty() {
        return Ok(false);
    }
    db.transaction(|db| {
        let date = now_rfc3339();
        let (date_at, source_at) = (params.len() + 1, params.len() + 2);
        let (mut app_id, mut oldest_new, mut newest) = (0, i64::MAX, 0);
        for batch in messages.chunks(INSERT_BATCH) {
            // (position, message) pairs after the condition's parameters, the date and
            // the source. SQLite reads the whole SELECT before inserting (it reads the
            // table it inserts into), so every row is numbered after the same newest entry.
            let rows: Vec<String> = (0..batch.len())
                .map(|i| format!("({}, ?{})", i + 1, source_at + 1 + i))
                .collect();
            let mut values = params.clone();
            values.extend([Value::from(date.as_str()), Value::from(source)]);
            values.extend(batch.iter().map(|m| Value::from(*m)));
            let inserted = db.query(
                &format!(
                    "INSERT INTO app_logs (app_id, seq, date, source, message) \
                     SELECT a.id, {NEWEST_SEQ} + m.column1, ?{date_at}, ?{source_at}, \
                     m.column2 FROM apps a, (VALUES {}) m WHERE {condition} \
                     RETURNING app_id, seq",
                    rows.join(", ")
                ),
                &values,
            )?;
            for row in &inserted {
                app_id = row.int(0);
                oldest_new = oldest_new.min(row.int(1));
                newest = newest.max(row.int(1));
            }
        }
        let slice = (retention / 100).max(1);
        // Trimmed to `keep`, the app reaches `retention` with the last entry before the
        // next multiple; the append that passes it trims again in its own transaction.
        let keep = retention - slice + 1;
        let passed_a_slice = newest / slice > (oldest_new - 1) / slice;
        if newest > 0 && passed_a_slice && newest > keep {
            db.execute(
                "DELETE FROM app_logs WHERE app_id = ? AND seq <= ?",
                params![app_id, newest - keep],
            )?;
        }
        Ok(newest > 0)
    })
}

/// The number of app `a`'s newest entry: entries are numbered on from it, and a reader
/// follows the entries after it. When the app has none left (`DELETE /logs`), the
/// number of the newest entry removed, so numbers never go back.
const NEWEST_SEQ: &str =
    "COALESCE((SELECT MAX(l.seq) FROM app_logs l WHERE l.app_id = a.id), a.cleared_log_seq)";

/// Appends entries from the API itself (source `tsuru`). A failed write is reported on
/// stderr and never fails the request (API.md 4.1).
pub fn record(db: &Db, app_id: i64, messages: &[String], retention: i64) {
    if let Err(e) = append(db, app_id, "tsuru", messages, retention) {
        eprintln!("app log {app_id}: {e}");
    }
}

/// One entry as the API shows it.
fn entry(app: &str, date: String, message: String, source: String) -> LogEntry {
    LogEntry {
        date,
        message,
        source,
        app: app.to_string(),
    }
}

/// `?lines=`: required, a decimal integer; `0`, or more than [`MAX_LINES`], means the most.
fn requested_lines(ctx: &Ctx) -> ApiResult<i64> {
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
    Ok(if lines == 0 || lines > MAX_LINES {
        MAX_LINES
    } else {
        lines
    })
}

/// `GET /apps/:app/log`: the app, the access check and the last entries in one
/// statement; with `follow=1`, a stream of the entries that come after them.
pub fn read_log(ctx: &mut Ctx) -> ApiResult<Response> {
    let lines = requested_lines(ctx)?;
    let source = ctx
        .req
        .query_param("source")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    let columns = format!(
        ", {NEWEST_SEQ}, (SELECT json_group_array(json_array(seq, date, message, source)) \
         FROM (SELECT seq, date, message, source FROM app_logs \
         WHERE app_id = a.id AND (?4 IS NULL OR source = ?4) ORDER BY seq DESC LIMIT ?5))"
    );
    let (app, row) = load_for_with(
        ctx.db()?,
        ctx.param("app"),
        user,
        admin_team.as_deref(),
        Extra {
            columns: &columns,
            params: vec![Value::from(source.clone()), Value::from(lines)],
        },
    )?;
    let newest = row.int(APP_COLUMN_COUNT);
    let mut found: Vec<(i64, String, String, String)> =
        serde_json::from_str(&row.text(APP_COLUMN_COUNT + 1)).unwrap_or_default();
    found.sort_by_key(|(seq, ..)| *seq);
    let entries: Vec<LogEntry> = found
        .into_iter()
        .map(|(_, date, message, source)| entry(&app.name, date, message, source))
        .collect();
    audit::record(ctx, "app-log", &app.name, json!({}));
    if ctx.req.query_param("follow") != Some("1") {
        return Ok(Response::json(&entries));
    }
    // The array as the first line, then every later entry on its own line (API.md 3.1).
    let mut first = Response::json(&entries);
    first.body.push(b'\n');
    let following = Follow {
        app_id: app.id,
        app: app.name,
        user_id: user.id,
        admin_team,
        source,
        after: newest,
    };
    Ok(first.streaming(Box::new(move |ctx, write| following.run(ctx, write))))
}

/// How long a follow lasts, and how often it looks for new entries (API.md 3.1, 8.5).
pub const FOLLOW_FOR: Duration = Duration::from_secs(60);
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// A log stream: the entries of one app (by id) after `after`, for as long as the
/// reader keeps access to that app.
struct Follow {
    app_id: i64,
    app: String,
    user_id: i64,
    admin_team: Option<String>,
    source: Option<String>,
    after: i64,
}

impl Follow {
    /// Sends each new entry as a one-element array on its own line, until [`FOLLOW_FOR`]
    /// has passed, the client has gone away (`write` says `false`; an empty write only
    /// asks), or the app is gone or no longer the reader's (checked at every look, so
    /// the stream ends within a second of either; API.md 8.5).
    fn run(mut self, ctx: &Ctx, write: &mut dyn FnMut(&[u8]) -> bool) {
        let deadline = Instant::now() + FOLLOW_FOR;
        while Instant::now() < deadline && write(&[]) {
            std::thread::sleep(FOLLOW_EVERY);
            let rows = match self.poll(ctx) {
                Ok(rows) => rows,
                Err(e) => {
                    eprintln!("following the log of {}: {e}", self.app);
                    return;
                }
            };
            // The connection is not kept while waiting for the next look.
            ctx.release_db();
            if !rows.first().is_some_and(|r| r.bool(0)) {
                return;
            }
            for row in rows.iter().filter(|r| r.opt_int(1).is_some()) {
                self.after = row.int(1);
                let line = [entry(&self.app, row.text(2), row.text(3), row.text(4))];
                let mut line = serde_json::to_vec(&line).unwrap_or_default();
                line.push(b'\n');
                if !write(&line) {
                    return;
                }
            }
        }
    }

    /// Whether the reader may still read the app, with the entries after `after`.
    fn poll(&self, ctx: &Ctx) -> ApiResult<Vec<Row>> {
        let sql = format!(
            "SELECT ok.v, l.seq, l.date, l.message, l.source \
             FROM (SELECT EXISTS (SELECT 1 FROM apps a WHERE a.id = ?3 AND {ACCESS}) AS v) ok \
             LEFT JOIN app_logs l ON ok.v AND l.app_id = ?3 AND l.seq > ?4 \
             AND (?5 IS NULL OR l.source = ?5) ORDER BY l.seq"
        );
        Ok(ctx.db()?.query(
            &sql,
            params![
                self.user_id,
                self.admin_team.as_deref(),
                self.app_id,
                self.after,
                self.source.as_deref()
            ],
        )?)
    }
}

/// `POST /apps/:app/log`
pub fn append_log(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("app").to_string();
    if matches!(ctx.caller()?, Caller::App(token) if token.app != name) {
        return Err(ApiError::invalid_token());
    }
    let retention = ctx.config.log_retention()?;
    let source = ctx
        .req
        .query_param("source")
        .filter(|s| !s.is_empty())
        .unwrap_or("app")
        .to_string();
    let body: ApiResult<Vec<String>> =
        ctx.json_body("You must provide the log messages as a JSON array of strings.");
    let admin_team = ctx.config.admin_team();
    let target = match ctx.caller()? {
        Caller::User(user) => WriteTarget::new(&name, user, admin_team.as_deref()),
        Caller::App(token) => WriteTarget::for_app_token(&name, token.id),
    };
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let lines: Vec<String> = match body {
            Ok(messages) => messages
                .iter()
                .flat_map(|m| m.split('\n'))
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect(),
            Err(e) => {
                target.explain(db)?;
                return Err(e);
            }
        };
        append_to(db, &target, &source, &lines, retention)
    })?;
    Ok(Response::empty())
}

/// `DELETE /logs[?app=]` (API.md 9.4): every app's entries, or one app's.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = ctx.req.query_param("app").map(str::to_string);
    let db = ctx.db()?;
    let app_id = match &app {
        None => None,
        Some(name) => Some(
            load_with(db, name, None, None, Extra::default())
                .map_err(|e| match e.status {
                    404 => ApiError::not_found("App not found"),
                    _ => e,
                })?
                .0
                .id,
        ),
    };
    db.transaction(|db| clear(db, app_id))?;
    audit::record(ctx, "log-remove", app.as_deref().unwrap_or(""), json!({}));
    Ok(Response::empty())
}

/// Removes the entries of app `app_id`, or of every app. Each app keeps the number of
/// its newest entry, so its numbering (and a reader following it) carries on after them.
fn clear(db: &Db, app_id: Option<i64>) -> DbResult<()> {
    let keep_numbers = format!("UPDATE apps AS a SET cleared_log_seq = {NEWEST_SEQ}");
    match app_id {
        None => {
            db.execute(&keep_numbers, &[])?;
            db.execute("DELETE FROM app_logs", &[])
        }
        Some(id) => {
            db.execute(&format!("{keep_numbers} WHERE a.id = ?"), params![id])?;
            db.execute("DELETE FROM app_logs WHERE app_id = ?", params![id])
        }
    }
}

/// The app id of an app name, for routes that only need it to exist.
pub fn app_id(db: &Db, name: &str) -> ApiResult<i64> {
    db.query_opt("SELECT id FROM apps WHERE name = ?", params![name])?
        .map(|r| r.int(0))
        .ok_or_else(|| not_found(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::schema;

    #[test]
    fn long_messages_are_cut_into_whole_characters() {
        assert_eq!(pieces("").collect::<Vec<_>>(), [""]);
        let exact = "x".repeat(MAX_ENTRY_BYTES);
        assert_eq!(pieces(&exact).collect::<Vec<_>>(), [exact.as_str()]);
        // One ASCII byte, then two-byte characters: the cut at 16 KiB falls inside one.
        for long in [
            format!("x{}", "é".repeat(MAX_ENTRY_BYTES)),
            "€".repeat(MAX_ENTRY_BYTES),
            "y".repeat(2 * MAX_ENTRY_BYTES + 1),
        ] {
            let cut: Vec<&str> = pieces(&long).collect();
            assert!(cut
                .iter()
                .all(|p| !p.is_empty() && p.len() <= MAX_ENTRY_BYTES));
            assert!(cut[..cut.len() - 1]
                .iter()
                .all(|p| p.len() > MAX_ENTRY_BYTES - 4));
            assert_eq!(cut.concat(), long);
        }
    }

    fn messages(db: &Db, app_id: i64) -> Vec<String> {
        crate::runtime::db::native::texts(
            db,
            "SELECT message FROM app_logs WHERE app_id = ? ORDER BY seq",
            params![app_id],
        )
    }

    #[test]
    fn retention_trims_in_slices_and_never_keeps_more() {
        let db = schema::test_db_with_apps(&[(1, "a")]);
        let count = || db.query("SELECT COUNT(*) FROM app_logs", &[]).unwrap()[0].int(0);
        let mut trims = 0;
        let mut before = 0;
        for i in 1..=1_250 {
            // Mostly single entries, now and then a batch that may straddle a slice.
            let batch: Vec<String> = (0..if i % 97 == 0 { 23 } else { 1 })
                .map(|k| format!("{i}.{k}"))
                .collect();
            append(&db, 1, "app", &batch, 1_000).unwrap();
            let now = count();
            assert!(now <= 1_000, "{now} entries kept");
            if now < before {
                trims += 1;
                assert!(now >= 991, "trimmed to {now}");
            }
            before = now;
        }
        // 1,250 appends past the first 1,000 entries: a trim per slice of 10, not per append.
        assert!((30..=60).contains(&trims), "{trims} trims");
        let newest = messages(&db, 1).pop();
        assert_eq!(newest.as_deref(), Some("1250.0"));
    }

    #[test]
    fn entries_are_numbered_per_app_and_the_oldest_dropped_beyond_retention() {
        let db = schema::test_db_with_apps(&[(1, "a"), (2, "b")]);
        let lines: Vec<String> = (1..=250).map(|i| format!("line {i}")).collect();
        append(&db, 1, "app", &lines, 100).unwrap();
        append(&db, 2, "app", &["other".to_string()], 100).unwrap();
        record(&db, 1, &["t".to_string()], 100);
        let kept = messages(&db, 1);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept.first().map(String::as_str), Some("line 152"));
        assert_eq!(kept.last().map(String::as_str), Some("t"));
        assert_eq!(messages(&db, 2), vec!["other"]);
        // Numbering carries on after the entries are cleared, for one app or all.
        clear(&db, Some(2)).unwrap();
        append(&db, 2, "app", &["again".to_string()], 100).unwrap();
        clear(&db, None).unwrap();
        append(&db, 2, "app", &["last".to_string()], 100).unwrap();
        let seqs = db
            .query("SELECT seq FROM app_logs WHERE app_id = 2", &[])
            .unwrap();
        assert_eq!(seqs.iter().map(|r| r.int(0)).collect::<Vec<_>>(), [3]);
        assert!(messages(&db, 1).is_empty());
        append(&db, 1, "app", &["after".to_string()], 100).unwrap();
        let seqs = db
            .query("SELECT seq FROM app_logs WHERE app_id = 1", &[])
            .unwrap();
        assert_eq!(seqs.iter().map(|r| r.int(0)).collect::<Vec<_>>(), [252]);
        // An app removed takes its entries; appending to it writes nothing.
        // (Below: with a retention of 100 the slice is one entry, so every append trims.)
        db.execute("DELETE FROM apps WHERE id = 1", &[]).unwrap();
        assert!(messages(&db, 1).is_empty());
        append(&db, 1, "app", &["late".to_string()], 100).unwrap();
        assert!(messages(&db, 1).is_empty());
    }

    #[test]
    fn an_app_token_writes_only_to_the_app_it_was_issued_for() {
        // App 2 is a namesake of app 1, which was removed after the token was issued.
        let db = schema::test_db_with_apps(&[(2, "web")]);
        let line = vec!["hello".to_string()];
        let append_with = |token_app: Option<i64>| {
            append_to(
                &db,
                &WriteTarget::for_app_token("web", token_app),
                "app",
                &line,
                10,
            )
        };
        assert_eq!(append_with(Some(1)).unwrap_err().status, 401);
        assert!(messages(&db, 2).is_empty());
        append_with(Some(2)).unwrap();
        // A token that names no app (the system's) writes to the app by name.
        append_with(None).unwrap();
        assert_eq!(messages(&db, 2), ["hello", "hello"]);
    }
}
