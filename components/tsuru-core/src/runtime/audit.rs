//! The append-only audit trail (API.md 4.1 `audit_events`). A failed write is reported
//! on stderr and never fails the request. Never record a password, token or variable value.

use crate::params;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, Value};
use crate::runtime::time::now_rfc3339;

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
    if let Err(e) = inserted {
        eprintln!("audit {action} {target}: {e}");
    }
}

const INSERT: &str =
    "INSERT INTO audit_events (date, actor, action, target, extra) VALUES (?, ?, ?, ?, ?)";

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
    let inserted = db.execute(
        INSERT,
        params![now_rfc3339(), actor, action, target, extra.to_string()],
    );
    if let Err(e) = inserted {
        eprintln!("audit {action} {target}: {e}");
    }
}
