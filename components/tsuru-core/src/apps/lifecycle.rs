//! Creating and removing apps (API.md 3.1 `POST /apps`, `DELETE /apps/:app`), with the
//! rollback of a creation that fails halfway.

use crate::apps::records::{load_for_user, repository_url};
use crate::apps::units::insert_unit;
use crate::apps::{bound_services, env, quota};
use crate::identity::tokens;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbError};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::secrets::new_token;
use crate::runtime::time::now_rfc3339;
use crate::upstream::{gandalf, provisioner};
use serde::Deserialize;
use serde_json::json;

/// `^[a-z][a-z0-9-]{0,62}$`
fn is_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[derive(Deserialize)]
struct NewApp {
    name: Option<String>,
    platform: Option<String>,
    framework: Option<String>,
}

/// What creation needs once the request is validated.
struct Creation {
    name: String,
    platform: String,
    owner: String,
    teams: Vec<String>,
    units_quota: Option<i64>,
    host: String,
    token: String,
}

/// `POST /apps`
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: NewApp = ctx.json_object("Invalid JSON in request body.")?;
    let user = ctx.user()?.clone();
    if user.teams.is_empty() {
        return Err(ApiError::bad_request(
            "In order to create an app, you should be member of at least one team",
        ));
    }
    let platform = body.platform.or(body.framework).unwrap_or_default();
    let db = ctx.db()?;
    if platform.is_empty()
        || !db.exists(
            "SELECT 1 FROM platforms WHERE name = ?",
            params![platform.as_str()],
        )?
    {
        return Err(ApiError::bad_request("Invalid platform"));
    }
    let name = body.name.unwrap_or_default();
    if !is_app_name(&name) {
        return Err(ApiError::bad_request(
            "Invalid app name, your app should have at most 63 characters, containing only lower case letters, numbers or dashes, starting with a letter.",
        ));
    }
    let creation = Creation {
        units_quota: ctx.config.quota_units_per_app()?,
        host: ctx
            .config
            .tsuru_host()
            .or_else(|| ctx.req.base_url())
            .unwrap_or_default(),
        token: new_token()?,
        name,
        platform,
        owner: user.email,
        teams: user.teams,
    };
    let serial = db.transaction(|db| insert_app(db, &creation))?;
    let mut repository_created = false;
    if let Err(e) = set_up(ctx, &creation, serial, &mut repository_created) {
        undo_creation(ctx, &creation, repository_created);
        return Err(e);
    }
    audit::record(
        ctx,
        "create-app",
        &creation.name,
        json!({"platform": creation.platform}),
    );
    Ok(Response::json(&json!({
        "status": "success",
        "repository_url": repository_url(&ctx.config.git_host(), &creation.name),
    })))
}

fn creation_failed(app: &str, why: &str) -> String {
    format!("Tsuru failed to create the app \"{app}\": {why}")
}

/// Side effect 1 of `POST /apps`, with checks 5–7 inside the transaction so that
/// concurrent creations see each other.
fn insert_app(db: &Db, c: &Creation) -> ApiResult<i64> {
    let name = c.name.as_str();
    let duplicate = || {
        ApiError::conflict(creation_failed(
            name,
            "there is already an app with this name.",
        ))
    };
    if db.exists("SELECT 1 FROM apps WHERE name = ?", params![name])? {
        return Err(duplicate());
    }
    let user_quota = quota::available(db, &c.owner)?;
    if user_quota == Some(0) {
        return Err(ApiError::forbidden("Quota exceeded"));
    }
    if c.units_quota == Some(0) {
        return Err(ApiError::forbidden(creation_failed(
            name,
            "app creation is disallowed",
        )));
    }
    db.execute("INSERT INTO app_serials DEFAULT VALUES", &[])?;
    let serial = db
        .query_opt("SELECT last_insert_rowid()", &[])?
        .map_or(0, |r| r.int(0));
    let inserted = db.execute(
        "INSERT INTO apps (name, serial, platform, ip, cname, owner, state, next_unit, created_at, logs_after) \
         VALUES (?, ?, ?, '', '', ?, 'pending', 1, ?, \
         (SELECT COALESCE(MAX(id), 0) FROM app_logs WHERE app = ?))",
        params![name, serial, c.platform.as_str(), c.owner.as_str(), now_rfc3339(), name],
    );
    match inserted {
        Err(e) if e.is_unique_violation() => return Err(duplicate()),
        other => other?,
    }
    for team in &c.teams {
        db.execute(
            "INSERT INTO app_teams (app, team) VALUES (?, ?)",
            params![name, team.as_str()],
        )?;
    }
    if user_quota.is_some() {
        quota::add_items(db, &c.owner, &[name.to_string()])?;
    }
    if let Some(limit) = c.units_quota {
        quota::create(db, name, limit, &[quota::unit_item(name, 0)])?;
    }
    for (variable, value) in [
        ("TSURU_APPNAME", name),
        ("TSURU_HOST", c.host.as_str()),
        ("TSURU_APP_TOKEN", c.token.as_str()),
    ] {
        env::set_private(db, name, variable, value, None)?;
    }
    Ok(serial)
}

/// Side effects 2–4 of `POST /apps`: token record, repository, first unit.
fn set_up(ctx: &Ctx, c: &Creation, serial: i64, repository_created: &mut bool) -> ApiResult<()> {
    let failed = |reason: String| ApiError::bad_gateway(creation_failed(&c.name, &reason));
    tokens::store_app_token(ctx.kv()?, &c.token, &c.name, Some(serial))?;
    let db = ctx.db()?;
    let users = repository_users(db, &c.name)?;
    gandalf::create_repository(ctx, &c.name, &users).map_err(failed)?;
    *repository_created = true;
    let env = env::values(db, &c.name)?;
    let first_unit = format!("{}/0", c.name);
    let provisioned =
        provisioner::provision(ctx, &c.name, &c.platform, &[first_unit], &env).map_err(failed)?;
    let stored = db.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE apps SET ip = ?, state = 'ready' WHERE name = ?",
            params![provisioned.ip.as_str(), c.name.as_str()],
        )?;
        let quota_item = c.units_quota.map(|_| quota::unit_item(&c.name, 0));
        insert_unit(db, &c.name, 0, &provisioned.units[0], quota_item.as_deref())?;
        Ok(())
    });
    if stored.is_err() {
        log_failure(
            "provisioner destroy",
            &c.name,
            provisioner::destroy(ctx, &c.name),
        );
    }
    stored
}

/// Undoes `POST /apps` in reverse order after a failure in side effects 2–4; each
/// undo step that fails is reported on stderr.
fn undo_creation(ctx: &Ctx, c: &Creation, repository_created: bool) {
    if repository_created {
        log_failure(
            "gandalf remove repository",
            &c.name,
            gandalf::remove_repository(ctx, &c.name),
        );
    }
    let token = ctx.kv().and_then(|kv| tokens::delete_token(kv, &c.token));
    log_failure("delete app token", &c.name, token.map_err(|e| e.message));
    let rows = ctx.db().and_then(|db| {
        db.transaction(|db| delete_app_rows(db, &c.name, &c.owner))
            .map_err(ApiError::from)
    });
    log_failure("delete app rows", &c.name, rows.map_err(|e| e.message));
}

fn log_failure(step: &str, app: &str, result: Result<(), String>) {
    if let Err(reason) = result {
        eprintln!("{step} for app {app} failed: {reason}");
    }
}

/// Members of the app's teams: who may push to its repository.
fn repository_users(db: &Db, app: &str) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT DISTINCT m.email FROM app_teams t JOIN team_members m ON m.team = t.team \
             WHERE t.app = ? ORDER BY m.email",
            params![app],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// Every row of an app except its log entries; its tokens die with its serial.
fn delete_app_rows(db: &Db, app: &str, owner: &str) -> Result<(), DbError> {
    for statement in [
        "DELETE FROM apps WHERE name = ?",
        "DELETE FROM units WHERE app = ?",
        "DELETE FROM env_vars WHERE app = ?",
        "DELETE FROM app_teams WHERE app = ?",
        "DELETE FROM instance_apps WHERE app = ?",
    ] {
        db.execute(statement, params![app])?;
    }
    quota::release(db, owner, &[app.to_string()])?;
    quota::delete(db, app)
}

/// `DELETE /apps/:app`
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    bound_services::unbind_app_everywhere(ctx, &app.name);
    log_failure(
        "provisioner destroy",
        &app.name,
        provisioner::destroy(ctx, &app.name),
    );
    log_failure(
        "gandalf remove repository",
        &app.name,
        gandalf::remove_repository(ctx, &app.name),
    );
    ctx.db()?
        .transaction(|db| delete_app_rows(db, &app.name, &app.owner))?;
    audit::record(ctx, "app-delete", &app.name, json!({}));
    Ok(Response::text("success"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["a", "my-app", "a1", &format!("a{}", "b".repeat(62))] {
            assert!(is_app_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "My",
            "a_b",
            "a.b",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(!is_app_name(bad), "{bad}");
        }
    }
}
