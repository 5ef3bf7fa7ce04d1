//! The append-only audit trail (API.md 4.1 `audit_events`). A failed write is reported
//! on stderr and never fails the request. Never record a password, token or variable value.

use crate::params;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult, Row, Value};
use crate::runtime::time::{now_rfc3339, now_unix, rfc3339};

/// The actor of an event: the user's email, or `app:<name>` for an app token.
pub fn actor(caller: Option<&Caller>) -> String {
    match caller {
        Some(Caller::User(u)) => u.email.clone(),
        Some(Caller::App(a)) => format!("app:{}", a.app),
        None => String::new(),
    }
}

/// Records `action` on `target` by the request's caller (or `actor_override`, for routes
/// without a token such as registration and login).
pub fn record(ctx: &Ctx, action: &str, target: &str, extra: serde_json::Value) {
    record_as(ctx, &actor(ctx.caller.as_ref()), action, target, extra)
}

pub fn record_as(ctx: &Ctx, actor: &str, action: &str, target: &str, extra: serde_json::Value) {
    let db = match ctx.db() {
        Ok(db) => db,
        Err(e) => return eprintln!("audit {action} {target}: {e}"),
    };
    let params = params![now_rfc3339(), actor, action, target, extra.to_string()];
    // A read route's only write waits for the lock SQLite's way: setting the connection
    // up for writes would cost every read a statement. Other routes write anyway.
    let inserted = if matches!(ctx.req.method.as_str(), "GET" | "HEAD") {
        db.query(INSERT, params)
    } else {
        db.write(INSERT, params)
    };
    note_inserted(db, action, target, inserted);
}

const INSERT: &str = "INSERT INTO audit_events (date, actor, action, target, extra) \
     VALUES (?, ?, ?, ?, ?) RETURNING id";

/// Every how many events a request looks for events past `audit_retention_days`.
const PRUNE_EVERY: i64 = 1_000;

/// The most events one look deletes: more than arrive between two looks, so a backlog
/// (a retention shortened, events from before it was set) is caught up, a bounded
/// step at a time.
const PRUNE_BATCH: i64 = 2 * PRUNE_EVERY;

/// Reports a failed insert; notes a pruning point when the event's id reaches one.
fn note_inserted(db: &Db, action: &str, target: &str, inserted: DbResult<Vec<Row>>) {
    match inserted {
        Ok(rows) => {
            if rows.first().is_some_and(|r| r.int(0) % PRUNE_EVERY == 0) {
                db.set_prune_due();
            }
        }
        Err(e) => eprintln!("audit {action} {target}: {e}"),
    }
}

/// Deletes the oldest events older than `audit_retention_days`, at most
/// [`PRUNE_BATCH`], when a write of this request reached a pruning point: once every
/// [`PRUNE_EVERY`] events, after the request's own work, in one autocommit statement.
/// Ids grow with time, so the oldest ids are the candidates. Unset, nothing is ever
/// deleted. A failure or an invalid value is reported on stderr; the request's answer
/// is already decided.
///
/// App creation's event, written by its procedure, is not counted: a pruning point that
/// falls on one is skipped, and the next one catches up ([`PRUNE_BATCH`] is twice the
/// events between two points).
pub fn prune_if_due(ctx: &Ctx) {
    let Some(db) = ctx.opened_db().filter(|db| db.take_prune_due()) else {
        return;
    };
    let days = match ctx.config.audit_retention_days() {
        Ok(Some(days)) => days,
        Ok(None) => return,
        Err(e) => return eprintln!("audit pruning: {}", e.message),
    };
    let cutoff = rfc3339(now_unix() - days * 86_400);
    let pruned = db.write(
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events ORDER BY id LIMIT ?) AND date < ?",
        params![PRUNE_BATCH, cutoff],
    );
    if let Err(e) = pruned {
        eprintln!("audit pruning: {e}");
    }
}

/// An event as the columns a write procedure takes (`Procedure` in `runtime/db.rs`), in their
/// order: `date, actor, action, extra`; the procedure names the target. The event is
/// part of the procedure's one statement, so it commits, or fails, with the change.
pub fn procedure_columns(actor: &str, action: &str, extra: serde_json::Value) -> [Value; 4] {
    [
        Value::from(now_rfc3339()),
        Value::from(actor),
        Value::from(action),
        Value::from(extra.to_string()),
    ]
}

/// Records an event with the caller's writes, inside their transaction: one commit for
/// both. A failed insert is reported and leaves the caller's writes alone (SQLite undoes
/// only the failed statement).
pub fn record_in(db: &Db, actor: &str, action: &str, target: &str, extra: serde_json::Value) {
    let inserted = db.query(
        INSERT,
        params![now_rfc3339(), actor, action, target, extra.to_string()],
    );
    note_inserted(db, action, target, inserted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::context::fake::FakePlatform;
    use crate::runtime::db::native::texts;
    use crate::runtime::request::Request;

    fn ctx(vars: &[(&str, &str)]) -> Ctx {
        Ctx::new(
            Request::new("POST", "/x", vec![]),
            FakePlatform::leaked(vars),
        )
    }

    /// `old` events dated in 2020, then new events by `record` until the last id is
    /// `last`.
    fn seed(ctx: &Ctx, old: i64, last: i64) {
        let db = ctx.db().unwrap();
        for id in 1..=old {
            db.execute(
                "INSERT INTO audit_events (id, date, actor, action, target) \
                 VALUES (?, '2020-01-01T00:00:00Z', 'a@b.com', 'old', 't')",
                params![id],
            )
            .unwrap();
        }
        let next = db
            .query_opt("SELECT COALESCE(MAX(id), 0) + 1 FROM audit_events", &[])
            .unwrap()
            .unwrap()
            .int(0);
        for _ in next..=last {
            record(ctx, "new", "t", serde_json::json!({}));
        }
    }

    fn actions(ctx: &Ctx) -> Vec<String> {
        let db = ctx.db().unwrap();
        texts(
            db,
            "SELECT DISTINCT action FROM audit_events ORDER BY action",
            &[],
        )
    }

    fn count(ctx: &Ctx, action: &str) -> i64 {
        let db = ctx.db().unwrap();
        let row = db
            .query_opt(
                "SELECT COUNT(*) FROM audit_events WHERE action = ?",
                params![action],
            )
            .unwrap()
            .unwrap();
        row.int(0)
    }

    #[test]
    fn the_event_at_a_pruning_point_deletes_a_batch_of_events_past_retention() {
        let ctx = ctx(&[("audit_retention_days", "30")]);
        seed(&ctx, 2_500, 3 * PRUNE_EVERY - 1);
        prune_if_due(&ctx);
        assert_eq!(count(&ctx, "old"), 2_500, "no pruning point reached yet");
        seed(&ctx, 0, 3 * PRUNE_EVERY);
        assert_eq!(
            count(&ctx, "old"),
            2_500,
            "pruning waits for the request's end"
        );
        prune_if_due(&ctx);
        // The oldest PRUNE_BATCH ids go; the recent events, newer than 30 days, stay.
        assert_eq!(count(&ctx, "old"), 500);
        prune_if_due(&ctx);
        assert_eq!(count(&ctx, "old"), 500, "once per pruning point");
        assert_eq!(actions(&ctx), ["new", "old"]);
    }

    #[test]
    fn without_a_retention_the_trail_keeps_everything() {
        let unset = ctx(&[]);
        seed(&unset, 2_500, 3 * PRUNE_EVERY);
        prune_if_due(&unset);
        assert_eq!(count(&unset, "old"), 2_500);
        let invalid = ctx(&[("audit_retention_days", "0")]);
        assert!(invalid.config.audit_retention_days().is_err());
    }

    #[test]
    fn events_within_retention_are_never_pruned() {
        let ctx = ctx(&[("audit_retention_days", "1")]);
        seed(&ctx, 0, PRUNE_EVERY);
        prune_if_due(&ctx);
        assert_eq!(count(&ctx, "new"), PRUNE_EVERY);
    }
}
