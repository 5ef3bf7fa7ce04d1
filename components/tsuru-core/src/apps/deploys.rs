//! Deploys (API.md 9.1): the git server's hook (or a user) asks for a version of an app;
//! the provisioner's output is streamed to the caller, and a successful deploy is
//! recorded with the app (its `Deploys` count and `GET /deploys`).

use crate::apps::env;
use crate::apps::records::{load_for_with, load_with, Extra, APP_COLUMN_COUNT};
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::request::parse_form;
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::upstream::provisioner;
use serde::Serialize;
use serde_json::json;
use std::time::Instant;

/// The most deploy records `GET /deploys` lists, newest first.
const MAX_LISTED: i64 = 10_000;

/// Deploy records kept per app, newest first: with the record-only provisioner a deploy
/// costs no outside call, so without a bound one app's hook could grow the shared
/// database without end. The app's `Deploys` count still counts every deploy.
const KEPT_PER_APP: i64 = 1_000;

/// The most bytes of a deploy's `version` or `commit` (a ref name, a commit id).
const MAX_FIELD_BYTES: usize = 255;

/// `POST /apps/:app/repository/clone` and `POST /apps/:app/deploy`: form
/// `version=<ref>&commit=<sha>`. Once the checks pass the answer is `200` and the output
/// streams; its last line is `OK`, or `ERROR: <reason>` with nothing recorded.
pub fn deploy(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("app").to_string();
    let admin_team = ctx.config.admin_team();
    let extra = Extra {
        columns: env::VALUES_COLUMN,
        params: Vec::new(),
    };
    let (app, row) = match ctx.caller()? {
        Caller::User(user) => load_for_with(ctx.db()?, &name, user, admin_team.as_deref(), extra)?,
        // The hook's system token (no app), or a token of this very app: an app's token
        // deploys no other app.
        Caller::App(token) => {
            let (app, row) = load_with(ctx.db()?, &name, None, None, extra)?;
            if token.id.is_some_and(|id| id != app.id) {
                return Err(ApiError::invalid_token());
            }
            (app, row)
        }
    };
    let form = parse_form(&ctx.req.body);
    let field = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (version, commit) = (field("version"), field("commit"));
    if version.is_empty() {
        return Err(ApiError::bad_request("Missing parameter version"));
    }
    for (field, value) in [("version", &version), ("commit", &commit)] {
        if value.len() > MAX_FIELD_BYTES {
            return Err(ApiError::bad_request(format!(
                "Parameter {field} too long: it may be at most {MAX_FIELD_BYTES} bytes."
            )));
        }
    }
    let env = env::values_from(&row, APP_COLUMN_COUNT);
    let actor = audit::actor(ctx.caller.as_ref());
    let stream = move |ctx: &Ctx, write: &mut dyn FnMut(&[u8]) -> bool| {
        let started = Instant::now();
        let mut ends_a_line = true;
        let deployed = provisioner::deploy(ctx, &app.name, &version, &commit, &env, &mut |out| {
            ends_a_line = out.ends_with(b"\n");
            write(out)
        })
        .and_then(|()| {
            let duration = started.elapsed().as_secs_f64();
            record(ctx, app.id, &app.name, &version, &commit, duration, &actor)
                .map_err(|e| e.message)
        });
        let last = match deployed {
            Ok(()) => "OK\n".to_string(),
            Err(reason) => format!("ERROR: {reason}\n"),
        };
        if !ends_a_line {
            write(b"\n");
        }
        write(last.as_bytes());
    };
    Ok(Response::text("").streaming(Box::new(stream)))
}

/// Records a successful deploy: the record, the app's count and the audit event, in one
/// transaction, dropping the app's records past [`KEPT_PER_APP`]. An app removed
/// meanwhile gets nothing (its id is gone).
fn record(
    ctx: &Ctx,
    app_id: i64,
    app: &str,
    version: &str,
    commit: &str,
    duration: f64,
    actor: &str,
) -> ApiResult<()> {
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let counted = db.query_opt(
            "UPDATE apps SET deploys = deploys + 1 WHERE id = ? RETURNING id",
            params![app_id],
        )?;
        if counted.is_none() {
            return Err(ApiError::not_found(format!("App {app} not found.")));
        }
        db.execute(
            "INSERT INTO deploys (app_id, version, commit_id, timestamp, duration) VALUES (?, ?, ?, ?, ?)",
            params![app_id, version, commit, now_rfc3339(), duration],
        )?;
        drop_old(db, app_id, KEPT_PER_APP)?;
        let extra = json!({ "version": version, "commit": commit });
        audit::record_in(db, actor, "deploy", app, extra);
        Ok(())
    })
}

/// Deletes app `app_id`'s deploy records but its newest `kept` (one index range).
fn drop_old(db: &Db, app_id: i64, kept: i64) -> ApiResult<()> {
    db.execute(
        "DELETE FROM deploys WHERE app_id = ?1 AND id <= \
         (SELECT id FROM deploys WHERE app_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![app_id, kept],
    )?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DeployView {
    app: String,
    timestamp: String,
    duration: f64,
    commit: String,
}

/// `GET /deploys[?app=]` (admin): deploy records, newest first.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = ctx.req.query_param("app").map(str::to_string);
    let rows = ctx.db()?.query(
        "SELECT a.name, d.timestamp, d.duration, d.commit_id FROM deploys d \
         JOIN apps a ON a.id = d.app_id WHERE ?1 IS NULL OR a.name = ?1 \
         ORDER BY d.id DESC LIMIT ?2",
        params![app.as_deref(), MAX_LISTED],
    )?;
    let deploys: Vec<DeployView> = rows
        .iter()
        .map(|r| DeployView {
            app: r.text(0),
            timestamp: r.text(1),
            duration: r.real(2),
            commit: r.text(3),
        })
        .collect();
    Ok(Response::json(&deploys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::texts;
    use crate::runtime::schema::test_db_with_apps;

    fn versions(db: &Db, app_id: i64) -> Vec<String> {
        texts(
            db,
            "SELECT version FROM deploys WHERE app_id = ? ORDER BY id",
            params![app_id],
        )
    }

    #[test]
    fn only_the_newest_records_of_the_app_are_kept() {
        let db = test_db_with_apps(&[(1, "web"), (2, "api")]);
        for (app_id, version) in [(1, "v1"), (2, "a1"), (1, "v2"), (1, "v3"), (1, "v4")] {
            db.execute(
                "INSERT INTO deploys (app_id, version, commit_id, timestamp, duration) \
                 VALUES (?, ?, '', 'now', 0)",
                params![app_id, version],
            )
            .unwrap();
            drop_old(&db, app_id, 2).unwrap();
        }
        assert_eq!(versions(&db, 1), ["v3", "v4"]);
        // Another app's records are its own.
        assert_eq!(versions(&db, 2), ["a1"]);
        drop_old(&db, 2, 2).unwrap();
        assert_eq!(versions(&db, 2), ["a1"]);
    }
}
