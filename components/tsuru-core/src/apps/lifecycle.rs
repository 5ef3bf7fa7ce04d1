//! Creating and removing apps (API.md 3.1 `POST /apps`, `DELETE /apps/:app`), with the
//! rollback of a creation that fails halfway. The database work is done in transactions
//! between the outbound calls, never across one (API.md 8.9), and no connection is held
//! during a call (a remote database drops one left idle).

use crate::apps::records::{load_for_user, repository_url};
use crate::apps::{bound_services, quota, units};
use crate::identity::tokens;
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::User;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, Procedure, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::secrets::new_token;
use crate::runtime::time::{now_rfc3339, now_unix};
use crate::upstream::gandalf;
use crate::upstream::provisioner::{self, UnitStatus};
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
    /// The private variables every app starts with, as the provisioner gets them;
    /// [`APP_CREATION`] stores the same three.
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
    if platform.is_empty() {
        return Err(invalid_platform());
    }
    // The platform is checked by the write (its foreign key), and read only when a
    // refusal must say which check failed first (API.md: the platform's, check 3).
    let name = body.name.unwrap_or_default();
    if !is_app_name(&name) {
        check_platform(ctx.db()?, &platform)?;
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
    // app is created ready, its first unit started; otherwise it is reserved first, as
    // `pending`, and made ready once the outside systems have done their part.
    let with_git = gandalf::is_configured(ctx);
    let at_once = provisioner::is_builtin(ctx) && !with_git;
    let started = provisioner::started(&[first_unit(&creation.name)]);
    let db = ctx.db()?;
    let app_id = insert_app(db, &creation, started.first().filter(|_| at_once))?;
    let members = if with_git {
        repository_users(db, app_id)?
    } else {
        Vec::new()
    };
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

fn invalid_platform() -> ApiError {
    ApiError::bad_request("Invalid platform")
}

/// Check 3 of `POST /apps`: the platform is in the platform table.
fn check_platform(db: &Db, platform: &str) -> ApiResult<()> {
    match db.exists("SELECT 1 FROM platforms WHERE name = ?", params![platform])? {
        true => Ok(()),
        false => Err(invalid_platform()),
    }
}

fn creation_failed(app: &str, why: &str) -> String {
    format!("Tsuru failed to create the app \"{app}\": {why}")
}

/// A new app: its row, its owner's teams, its unit quota (when `units_limit` is set) with
/// its first unit's item counted, its three private variables ([`Creation::variables`]),
/// its first unit (when `unit_name` is set) and the `create-app` event (when `action` is
/// set). Returns the app's id.
const APP_CREATION: Procedure = Procedure {
    name: "app_creations",
    columns: &[
        "name",
        "platform",
        "owner_id",
        "owner",
        "state",
        "created_at",
        "created_unix",
        "units_limit",
        "quota_item",
        "tsuru_host",
        "app_token",
        "unit_name",
        "unit_ip",
        "unit_state",
        "date",
        "actor",
        "action",
        "extra",
    ],
    body: &[
        "INSERT INTO apps (name, platform, owner, owner_id, state, next_unit, created_at, \
         created_unix) VALUES (NEW.name, NEW.platform, NEW.owner, NEW.owner_id, NEW.state, 1, \
         NEW.created_at, NEW.created_unix)",
        "INSERT INTO app_teams (app_id, team_id) SELECT a.id, m.team_id \
         FROM apps a, team_members m WHERE a.name = NEW.name AND m.user_id = NEW.owner_id",
        "INSERT INTO quotas (app_id, \"limit\") SELECT id, NEW.units_limit FROM apps \
         WHERE name = NEW.name AND NEW.units_limit IS NOT NULL",
        "INSERT INTO quota_items (quota_id, item) SELECT q.id, NEW.quota_item \
         FROM apps a JOIN quotas q ON q.app_id = a.id \
         WHERE a.name = NEW.name AND NEW.quota_item IS NOT NULL",
        "INSERT INTO env_vars (app_id, name, value, public) \
         SELECT a.id, v.name, v.value, 0 FROM apps a, \
         (SELECT 'TSURU_APPNAME' AS name, NEW.name AS value \
         UNION ALL SELECT 'TSURU_HOST', NEW.tsuru_host \
         UNION ALL SELECT 'TSURU_APP_TOKEN', NEW.app_token) v WHERE a.name = NEW.name",
        "INSERT INTO units (app_id, number, name, ip, state, quota_item) \
         SELECT id, 0, NEW.unit_name, NEW.unit_ip, NEW.unit_state, NEW.quota_item FROM apps \
         WHERE name = NEW.name AND NEW.unit_name IS NOT NULL",
        "INSERT INTO audit_events (date, actor, action, target, extra) \
         SELECT NEW.date, NEW.actor, NEW.action, NEW.name, NEW.extra WHERE NEW.action IS NOT NULL",
    ],
    result: "(SELECT id FROM apps WHERE name = NEW.name)",
};

/// Side effects 1–2 of `POST /apps`, with checks 5–7, in one statement so that
/// concurrent creations see each other: the [`APP_CREATION`] procedure makes the app's
/// row, its teams, quota and variables, and, given the `started` first unit, the unit
/// and the `create-app` event with the app `ready` (else it is `pending`). Its SELECT
/// checks the owner's quota and teams. Returns the app's id.
///
/// Only when it inserts nothing is the name read, to say why (a taken name before a
/// full quota), or to take over a creation abandoned under that name, which the quota
/// does not count.
fn insert_app(db: &Db, c: &Creation, started: Option<&UnitStatus>) -> ApiResult<i64> {
    let name = c.name.as_str();
    let now = now_unix();
    const ABANDONED: &str = "a.name = ?1 AND a.state = 'pending' AND a.created_unix < ?2";
    let duplicate = || {
        ApiError::conflict(creation_failed(
            name,
            "there is already an app with this name.",
        ))
    };
    // The procedure's columns, in order.
    let select = format!(
        "SELECT ?1, ?4, ?3, ?5, ?6, ?7, ?8, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20 \
         WHERE ?9 AND COALESCE({}, 1) > 0 \
         AND EXISTS (SELECT 1 FROM team_members WHERE user_id = ?3)",
        quota::user_room_column("?3", ABANDONED)
    );
    // Creation disallowed by configuration still answers a taken name first.
    let allowed = c.units_quota != Some(0);
    let mut params = params![
        name,
        now - PENDING_LEASE_SECONDS,
        c.owner.id,
        c.platform.as_str(),
        c.owner.email.as_str(),
        if started.is_some() {
            "ready"
        } else {
            "pending"
        },
        now_rfc3339(),
        now,
        allowed,
        c.units_quota,
        c.units_quota.map(|_| quota::unit_item(name, 0)),
        c.host.as_str(),
        c.token.as_str(),
        started.map(|u| u.name.as_str()),
        started.map(|u| u.ip.as_str()),
        started.map(|u| u.state.as_str())
    ]
    .to_vec();
    match started {
        Some(_) => params.extend(audit::procedure_columns(
            &c.owner.email,
            "create-app",
            json!({"platform": c.platform}),
        )),
        None => params.extend([Value::Null, Value::Null, Value::Null, Value::Null]),
    }
    // The app's id, or whether the name was taken.
    let attempt = |db: &Db| -> ApiResult<Result<i64, bool>> {
        match db.call(&APP_CREATION, &select, &params) {
            Ok(rows) => Ok(rows.first().map(|row| row.int(0)).ok_or(false)),
            Err(e) if e.is_unique_violation() => Ok(Err(true)),
            // No such platform (or it was removed meanwhile).
            Err(e) if e.is_foreign_key_violation() => Err(invalid_platform()),
            Err(e) => Err(e.into()),
        }
    };
    // Nothing inserted, and no abandoned creation holds the name: the name is taken, or
    // the quota is full, or creation is disallowed, or the owner has left every team; in
    // that order.
    let refusal = |db: &Db, taken: bool| -> ApiResult<ApiError> {
        Ok(if taken {
            duplicate()
        } else if quota::user_room(db, c.owner.id)?.is_some_and(|r| r <= 0) {
            ApiError::forbidden("Quota exceeded")
        } else if !allowed {
            ApiError::forbidden(creation_failed(name, "app creation is disallowed"))
        } else {
            no_team()
        })
    };
    let taken = match attempt(db)? {
        Ok(id) => return Ok(id),
        Err(taken) => taken,
    };
    // A write that inserted nothing, or stopped at the name, never reached the
    // platform's foreign key; its check comes before the name's and the quota's.
    check_platform(db, &c.platform)?;
    let holder = db.query_opt(
        &format!("SELECT {ABANDONED} FROM apps a WHERE a.name = ?1"),
        &params[..2],
    )?;
    match holder.map(|row| row.int(0)) {
        // Taken over in one transaction with the new creation, so that a refused one
        // leaves the abandoned reservation as it was; a creation that wins the name
        // meanwhile makes the attempt find it taken.
        Some(1) => db.transaction(|db| {
            db.execute(
                &format!("DELETE FROM apps AS a WHERE {ABANDONED}"),
                &params[..2],
            )?;
            match attempt(db)? {
                Ok(id) => Ok(id),
                Err(taken) => Err(refusal(db, taken)?),
            }
        }),
        Some(_) => Err(duplicate()),
        None => Err(refusal(db, taken)?),
    }
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
        .transaction(|db| record_ready(db, c, app_id, &provisioned));
    if stored.is_err() {
        log_failure(
            "provisioner destroy",
            &c.name,
            provisioner::destroy(ctx, &c.name),
        );
    }
    stored
}

/// The outcome of provisioning: the app's address and first unit; the app is ready.
fn record_ready(
    db: &Db,
    c: &Creation,
    app_id: i64,
    provisioned: &provisioner::Provisioned,
) -> ApiResult<()> {
    let ready = db.query_opt(
        "UPDATE apps SET ip = ?, state = 'ready' WHERE id = ? RETURNING id",
        params![provisioned.ip.as_str(), app_id],
    )?;
    if ready.is_none() {
        // Removed while it was being created.
        return Err(crate::apps::records::not_found(&c.name));
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
    use crate::runtime::schema;

    /// Each test runs on both kinds of database: one where the procedure is a temporary
    /// trigger, and one that refuses temporary objects (libSQL), where its statements
    /// run in a transaction.
    fn databases() -> [Db; 2] {
        [
            schema::test_db_with_apps(&[]),
            schema::test_db_like_libsql(&[]),
        ]
    }

    /// `db` with user 1 (`o@x.com`) in team `dev`, and the creation of `web`.
    fn setup(db: Db) -> (Db, User) {
        for sql in [
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'o@x.com', 'h', 'now')",
            "INSERT INTO teams (id, name, created_at) VALUES (3, 'dev', 'now')",
            "INSERT INTO team_members (team_id, user_id) VALUES (3, 1)",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        let user = User {
            id: 1,
            email: "o@x.com".into(),
            teams: vec!["dev".into()],
            is_admin: false,
        };
        (db, user)
    }

    fn creation(user: &User, units_quota: Option<i64>) -> Creation<'_> {
        Creation {
            name: "web".into(),
            platform: "python".into(),
            owner: user,
            units_quota,
            host: "http://tsuru".into(),
            token: "t0k".into(),
        }
    }

    fn rows(db: &Db, sql: &str) -> Vec<String> {
        db.query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    #[test]
    fn a_ready_creation_makes_every_part_in_one_statement() {
        for db in databases() {
            let (db, user) = setup(db);
            // Another app first, so that the id returned is not simply the first one.
            db.execute(
                "INSERT INTO apps (id, name, platform, owner, state, created_at) \
             VALUES (40, 'other', 'python', 'p@x.com', 'ready', 'now')",
                &[],
            )
            .unwrap();
            let c = creation(&user, Some(4));
            let started = provisioner::started(&[first_unit("web")]);
            let id = insert_app(&db, &c, started.first()).unwrap();
            assert_eq!(
            rows(&db, "SELECT id || ' ' || state || ' ' || owner_id || ' ' || next_unit FROM apps WHERE name = 'web'"),
            vec![format!("{id} ready 1 1")]
        );
            assert_ne!(id, 40);
            assert_eq!(rows(&db, "SELECT team_id FROM app_teams"), vec!["3"]);
            assert_eq!(
            rows(&db, &format!("SELECT q.\"limit\" || ' ' || i.item FROM quotas q JOIN quota_items i ON i.quota_id = q.id WHERE q.app_id = {id}")),
            vec!["4 web-0"]
        );
            let stored = rows(
                &db,
                "SELECT name || '=' || value || ' ' || public FROM env_vars ORDER BY name",
            );
            let mut expected: Vec<String> = c
                .variables()
                .iter()
                .map(|(k, v)| format!("{k}={v} 0"))
                .collect();
            expected.sort();
            assert_eq!(stored, expected);
            assert_eq!(
                rows(
                    &db,
                    "SELECT name || ' ' || state || ' ' || quota_item FROM units"
                ),
                vec!["web/0 started web-0"]
            );
            assert_eq!(
            rows(
                &db,
                "SELECT actor || ' ' || action || ' ' || target || ' ' || extra FROM audit_events"
            ),
            vec![r#"o@x.com create-app web {"platform":"python"}"#]
        );
        }
    }

    #[test]
    fn a_pending_creation_waits_for_its_unit_and_event() {
        for db in databases() {
            let (db, user) = setup(db);
            let id = insert_app(&db, &creation(&user, None), None).unwrap();
            assert_eq!(
                rows(&db, "SELECT state FROM apps WHERE name = 'web'"),
                vec!["pending"]
            );
            assert_eq!(
                rows(&db, &format!("SELECT id FROM apps WHERE id = {id}")).len(),
                1
            );
            for table in ["units", "audit_events", "quotas"] {
                assert!(
                    rows(&db, &format!("SELECT 1 FROM {table}")).is_empty(),
                    "{table}"
                );
            }
            assert_eq!(rows(&db, "SELECT COUNT(*) FROM env_vars"), vec!["3"]);
        }
    }

    #[test]
    fn a_refused_creation_writes_nothing_and_says_why() {
        let status = |db: &Db, c: &Creation| insert_app(db, c, None).unwrap_err();
        for db in databases() {
            let (db, user) = setup(db);
            insert_app(&db, &creation(&user, None), None).unwrap();
            let taken = status(&db, &creation(&user, None));
            assert_eq!(taken.status, 409, "{}", taken.message);
            db.execute("DELETE FROM apps", &[]).unwrap();
            db.execute("INSERT INTO quotas (user_id, \"limit\") VALUES (1, 0)", &[])
                .unwrap();
            assert_eq!(
                status(&db, &creation(&user, None)).message,
                "Quota exceeded"
            );
            db.execute("DELETE FROM quotas", &[]).unwrap();
            let disallowed = status(&db, &creation(&user, Some(0)));
            assert!(
                disallowed.message.contains("disallowed"),
                "{}",
                disallowed.message
            );
            db.execute("DELETE FROM team_members", &[]).unwrap();
            assert_eq!(
                status(&db, &creation(&user, None)).message,
                no_team().message
            );
            for table in ["apps", "app_teams", "env_vars", "quotas", "audit_events"] {
                assert!(
                    rows(&db, &format!("SELECT 1 FROM {table}")).is_empty(),
                    "{table}"
                );
            }
        }
    }

    #[test]
    fn an_abandoned_creation_gives_up_its_name_and_its_parts() {
        for db in databases() {
            let (db, user) = setup(db);
            let old = insert_app(&db, &creation(&user, None), None).unwrap();
            db.execute("UPDATE apps SET created_unix = 0", &[]).unwrap();
            let new = insert_app(&db, &creation(&user, None), None).unwrap();
            assert_ne!(old, new);
            assert_eq!(
                rows(&db, "SELECT DISTINCT app_id FROM env_vars"),
                vec![new.to_string()]
            );
        }
    }

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
