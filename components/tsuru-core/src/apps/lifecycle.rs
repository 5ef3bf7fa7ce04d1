//! Creating and removing apps (API.md 3.1 `POST /apps`, `DELETE /apps/:app`), with the
//! rollback of a creation that fails halfway. The database work is done in transactions
//! between the outbound calls, never across one (API.md 8.9), and no connection is held
//! during a call (a remote database drops one left idle).

use crate::apps::records::{load_for_user, repository_url};
use crate::apps::{bound_services, env, quota, units};
use crate::identity::tokens;
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::User;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::secrets::new_token;
use crate::runtime::time::{now_rfc3339, now_unix};
use crate::upstream::{gandalf, provisioner};
use serde::Deserialize;
use serde_json::json;

/// A creation still `pending` after this long was abandoned (its request died): a new
/// creation of that name takes its place, so no name stays blocked forever.
pub const PENDING_LEASE_SECONDS: i64 = 600;

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
struct Creation<'a> {
    name: String,
    platform: String,
    owner: &'a User,
    units_quota: Option<i64>,
    host: String,
    token: String,
}

impl Creation<'_> {
    /// The private variables every app starts with.
    fn variables(&self) -> [(&str, &str); 3] {
        [
            ("TSURU_APPNAME", self.name.as_str()),
            ("TSURU_HOST", self.host.as_str()),
            ("TSURU_APP_TOKEN", self.token.as_str()),
        ]
    }
}

fn no_team() -> ApiError {
    ApiError::bad_request("In order to create an app, you should be member of at least one team")
}

/// `POST /apps`
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: NewApp = ctx.json_object("Invalid JSON in request body.")?;
    let user = ctx.user()?;
    if user.teams.is_empty() {
        return Err(no_team());
    }
    let platform = body.platform.or(body.framework).unwrap_or_default();
    if platform.is_empty()
        || !ctx.db()?.exists(
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
        owner: user,
    };
    // With no outside system to wait for (no Gandalf, the built-in provisioner), the
    // creation is one transaction; otherwise the app is reserved first, as `pending`.
    let with_git = gandalf::is_configured(ctx);
    let at_once = provisioner::is_builtin(ctx) && !with_git;
    let (app_id, members) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let app_id = insert_app(db, &creation, at_once)?;
        insert_app_parts(db, &creation, app_id)?;
        if at_once {
            let units = provisioner::started(&[first_unit(&creation.name)]);
            let built_in = provisioner::Provisioned {
                ip: String::new(),
                units,
            };
            record_ready(db, &creation, app_id, &built_in, false)?;
        }
        let members = if with_git {
            repository_users(db, app_id)?
        } else {
            Vec::new()
        };
        Ok((app_id, members))
    })?;
    let mut repository_created = false;
    let done = tokens::store_app_token(ctx.kv()?, &creation.token, &creation.name, Some(app_id))
        .and_then(|_| match at_once {
            true => Ok(()),
            false => set_up(ctx, &creation, app_id, &members, &mut repository_created),
        });
    if let Err(e) = done {
        undo_creation(ctx, &creation, app_id, repository_created);
        return Err(e);
    }
    Ok(Response::json(&json!({
        "status": "success",
        "repository_url": repository_url(&ctx.config.git_host(), &creation.name),
    })))
}

fn creation_failed(app: &str, why: &str) -> String {
    format!("Tsuru failed to create the app \"{app}\": {why}")
}

/// Side effect 1 of `POST /apps`, with checks 5–7 inside the transaction so that
/// concurrent creations see each other: the app's row (`ready` when `ready`, else
/// `pending`). Returns its id.
///
/// The insert checks the owner's quota itself, so it opens the transaction and takes
/// the write lock with no read before it. Only when it inserts nothing is the name read,
/// to say why (a taken name before a full quota), or to take over a creation abandoned
/// under that name, which the quota does not count.
fn insert_app(db: &Db, c: &Creation, ready: bool) -> ApiResult<i64> {
    let name = c.name.as_str();
    let now = now_unix();
    const ABANDONED: &str = "a.name = ?1 AND a.state = 'pending' AND a.created_unix < ?2";
    let duplicate = || {
        ApiError::conflict(creation_failed(
            name,
            "there is already an app with this name.",
        ))
    };
    let insert = format!(
        "INSERT INTO apps (name, platform, owner, owner_id, state, next_unit, created_at, \
         created_unix) SELECT ?1, ?4, ?5, ?3, ?6, 1, ?7, ?8 \
         WHERE ?9 AND COALESCE({}, 1) > 0 RETURNING id",
        quota::user_room_column("?3", ABANDONED)
    );
    let state = if ready { "ready" } else { "pending" };
    // Creation disallowed by configuration still answers a taken name first.
    let allowed = c.units_quota != Some(0);
    let params = params![
        name,
        now - PENDING_LEASE_SECONDS,
        c.owner.id,
        c.platform.as_str(),
        c.owner.email.as_str(),
        state,
        now_rfc3339(),
        now,
        allowed
    ];
    let mut took_over = false;
    loop {
        let taken = match db.query_opt(&insert, params) {
            Ok(Some(row)) => return Ok(row.int(0)),
            Ok(None) => false,
            Err(e) if e.is_unique_violation() => true,
            // The platform was removed meanwhile.
            Err(e) if e.is_foreign_key_violation() => {
                return Err(ApiError::bad_request("Invalid platform"))
            }
            Err(e) => return Err(e.into()),
        };
        // Nothing inserted: the name is taken (an abandoned creation is taken over once),
        // or the quota is full, or creation is disallowed; in that order.
        let holder = db.query_opt(
            &format!("SELECT {ABANDONED} FROM apps a WHERE a.name = ?1"),
            &params[..2],
        )?;
        match holder.map(|row| row.int(0)) {
            Some(1) if !took_over => {
                db.execute("DELETE FROM apps WHERE name = ?", params![name])?;
                took_over = true;
                continue;
            }
            Some(_) => return Err(duplicate()),
            None if taken => return Err(duplicate()),
            None if allowed || quota::user_room(db, c.owner.id)?.is_some_and(|r| r <= 0) => {
                return Err(ApiError::forbidden("Quota exceeded"))
            }
            None => {
                return Err(ApiError::forbidden(creation_failed(
                    name,
                    "app creation is disallowed",
                )))
            }
        }
    }
}

/// The app's teams, quota and variables, after [`insert_app`] made its row.
fn insert_app_parts(db: &Db, c: &Creation, app_id: i64) -> ApiResult<()> {
    let name = c.name.as_str();
    // The app's teams: the owner's teams as they are now.
    let teams = db.query(
        "INSERT INTO app_teams (app_id, team_id) SELECT ?, team_id FROM team_members \
         WHERE user_id = ? RETURNING team_id",
        params![app_id, c.owner.id],
    )?;
    if teams.is_empty() {
        return Err(no_team());
    }
    if let Some(limit) = c.units_quota {
        quota::create_for_app(db, app_id, limit, &[quota::unit_item(name, 0)])?;
    }
    env::set_private(db, app_id, &c.variables(), None)?;
    Ok(())
}

/// The members of the app's teams: who may push to its repository.
fn repository_users(db: &Db, app_id: i64) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT DISTINCT u.email FROM app_teams x JOIN team_members m ON m.team_id = x.team_id \
             JOIN users u ON u.id = m.user_id WHERE x.app_id = ? ORDER BY u.email",
            params![app_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

fn first_unit(app: &str) -> String {
    format!("{app}/0")
}

/// Side effects 3–4 of `POST /apps`: repository, first unit; then the app is ready.
fn set_up(
    ctx: &Ctx,
    c: &Creation,
    app_id: i64,
    members: &[String],
    repository_created: &mut bool,
) -> ApiResult<()> {
    let failed = |reason: String| ApiError::bad_gateway(creation_failed(&c.name, &reason));
    gandalf::create_repository(ctx, &c.name, members).map_err(failed)?;
    *repository_created = true;
    let env = c
        .variables()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let provisioned =
        provisioner::provision(ctx, &c.name, &c.platform, &[first_unit(&c.name)], &env)
            .map_err(failed)?;
    let stored = ctx
        .db()?
        .transaction(|db| record_ready(db, c, app_id, &provisioned, true));
    if stored.is_err() {
        log_failure(
            "provisioner destroy",
            &c.name,
            provisioner::destroy(ctx, &c.name),
        );
    }
    stored
}

/// The outcome of provisioning: its first unit, and (with `mark_ready`) the app's address
/// and state; the app is ready.
fn record_ready(
    db: &Db,
    c: &Creation,
    app_id: i64,
    provisioned: &provisioner::Provisioned,
    mark_ready: bool,
) -> ApiResult<()> {
    if mark_ready {
        let ready = db.query_opt(
            "UPDATE apps SET ip = ?, state = 'ready' WHERE id = ? RETURNING id",
            params![provisioned.ip.as_str(), app_id],
        )?;
        if ready.is_none() {
            // Removed while it was being created.
            return Err(crate::apps::records::not_found(&c.name));
        }
    }
    let first = units::NewUnit {
        number: 0,
        status: &provisioned.units[0],
        quota_item: c.units_quota.map(|_| quota::unit_item(&c.name, 0)),
    };
    units::insert_units(db, app_id, &[first])?;
    audit::record_in(
        db,
        &c.owner.email,
        "create-app",
        &c.name,
        json!({"platform": c.platform}),
    );
    Ok(())
}

/// Undoes `POST /apps` in reverse order after a failure in side effects 2–4; each
/// undo step that fails is reported on stderr. The app's row goes last, by id, taking
/// its teams, variables and quota with it.
fn undo_creation(ctx: &Ctx, c: &Creation, app_id: i64, repository_created: bool) {
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
        db.write("DELETE FROM apps WHERE id = ?", params![app_id])
            .map(drop)
            .map_err(ApiError::from)
    });
    log_failure("delete app rows", &c.name, rows.map_err(|e| e.message));
}

pub fn log_failure(step: &str, app: &str, result: Result<(), String>) {
    if let Err(reason) = result {
        eprintln!("{step} for app {app} failed: {reason}");
    }
}

/// `DELETE /apps/:app`: the outside systems first (their failures reported and
/// ignored), then the app's row, by the id checked at the start: a namesake created
/// meanwhile is never touched. Everything that belongs to the app goes with the row.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    bound_services::unbind_app_everywhere(ctx, app.id);
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
    let email = ctx.user()?.email.clone();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute("DELETE FROM apps WHERE id = ?", params![app.id])?;
        audit::record_in(db, &email, "app-delete", &app.name, json!({}));
        Ok(())
    })?;
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
