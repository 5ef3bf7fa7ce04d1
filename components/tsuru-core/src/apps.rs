//! Apps (API.md 3.1): the app record and its access rule, creation and removal with
//! their rollbacks, restart, swap, team access, cname and availability. Variables,
//! units and logs have their own modules (`app_env`, `units`, `app_logs`).

use crate::app_env;
use crate::app_logs;
use crate::audit;
use crate::auth::{self, Caller, User};
use crate::context::Ctx;
use crate::db::{Db, DbError};
use crate::error::{ApiError, ApiResult};
use crate::gandalf;
use crate::http::Response;
use crate::instances;
use crate::params;
use crate::provisioner;
use crate::quotas;
use crate::teams;
use crate::util::{new_token, now_rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// An app row with its teams (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub serial: i64,
    pub platform: String,
    pub ip: String,
    pub cname: String,
    pub owner: String,
    pub state: String,
    pub created_at: String,
    /// Log entries with larger ids are this app's (API.md 7.6).
    pub logs_after: i64,
    pub teams: Vec<String>,
}

impl App {
    /// App access (API.md 1.8): one of the app's teams, or an admin.
    pub fn accessible_by(&self, user: &User) -> bool {
        user.is_admin || self.teams.iter().any(|team| user.in_team(team))
    }
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("App {name} not found."))
}

/// Loads an app, or `404 App <name> not found.`
pub fn load(db: &Db, name: &str) -> ApiResult<App> {
    let row = db
        .query_opt(
            "SELECT name, serial, platform, ip, cname, owner, state, created_at, logs_after FROM apps WHERE name = ?",
            params![name],
        )?
        .ok_or_else(|| not_found(name))?;
    let teams = db
        .query(
            "SELECT team FROM app_teams WHERE app = ? ORDER BY team",
            params![name],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect();
    Ok(App {
        name: row.text(0),
        serial: row.int(1),
        platform: row.text(2),
        ip: row.text(3),
        cname: row.text(4),
        owner: row.text(5),
        state: row.text(6),
        created_at: row.text(7),
        logs_after: row.int(8),
        teams,
    })
}

/// Loads an app the calling user may use: 404, then `403 User does not have access to this app`.
pub fn load_for_user(ctx: &Ctx, name: &str) -> ApiResult<App> {
    let app = load(ctx.db()?, name)?;
    if !app.accessible_by(ctx.user()?) {
        return Err(ApiError::forbidden("User does not have access to this app"));
    }
    Ok(app)
}

/// On `app-ok` routes: a user token needs app access; app tokens were checked by the route.
fn load_for_caller(ctx: &Ctx, name: &str) -> ApiResult<App> {
    match ctx.caller()? {
        Caller::User(_) => load_for_user(ctx, name),
        Caller::App(_) => load(ctx.db()?, name),
    }
}

/// `git@<git_host>:<app>.git`
pub fn repository_url(git_host: &str, app: &str) -> String {
    format!("git@{git_host}:{app}.git")
}

/// `^[a-z][a-z0-9-]{0,62}$`
fn is_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// `^[a-zA-Z0-9][\w.-]+$`, at most 253 characters.
fn is_cname(cname: &str) -> bool {
    let bytes = cname.as_bytes();
    (2..=253).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

// ---------------------------------------------------------------------------------------
// Listing

#[derive(Serialize)]
struct UnitView {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Ip")]
    ip: String,
    #[serde(rename = "State")]
    state: String,
}

#[derive(Serialize)]
struct AppView {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Framework")]
    framework: String,
    #[serde(rename = "Platform")]
    platform: String,
    #[serde(rename = "Repository")]
    repository: String,
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "Ip")]
    ip: String,
    #[serde(rename = "CName")]
    cname: String,
    #[serde(rename = "Teams")]
    teams: Vec<String>,
    #[serde(rename = "Units")]
    units: Vec<UnitView>,
}

/// Which apps a listing shows.
enum Scope<'a> {
    All,
    /// Apps sharing a team with this email (through the `app_teams` team index).
    MemberOf(&'a str),
}

impl Scope<'_> {
    /// A condition on `column` (an app name column) and its parameters.
    fn filter(&self, column: &str) -> (String, Vec<crate::db::Value>) {
        match self {
            Scope::All => (String::new(), Vec::new()),
            Scope::MemberOf(email) => (
                format!(
                    " WHERE {column} IN (SELECT t.app FROM team_members m \
                     JOIN app_teams t ON t.team = m.team WHERE m.email = ?)"
                ),
                params![*email].to_vec(),
            ),
        }
    }
}

impl AppView {
    /// The view of an app row, before its teams and units are added.
    fn new(
        git_host: &str,
        name: String,
        platform: String,
        state: String,
        ip: String,
        cname: String,
    ) -> Self {
        AppView {
            repository: repository_url(git_host, &name),
            framework: platform.clone(),
            platform,
            name,
            state,
            ip,
            cname,
            teams: Vec::new(),
            units: Vec::new(),
        }
    }
}

/// The units of one app, by number.
fn units(db: &Db, app: &str) -> ApiResult<Vec<UnitView>> {
    Ok(db
        .query(
            "SELECT name, ip, state FROM units WHERE app = ? ORDER BY number",
            params![app],
        )?
        .iter()
        .map(|row| UnitView {
            name: row.text(0),
            ip: row.text(1),
            state: row.text(2),
        })
        .collect())
}

/// The app objects of API.md 3.1 for `scope`, sorted by name; two queries: the apps
/// with their units, then their teams.
fn views(ctx: &Ctx, scope: Scope) -> ApiResult<Vec<AppView>> {
    let db = ctx.db()?;
    let git_host = ctx.config.git_host();
    let (filter, args) = scope.filter("a.name");
    let mut apps: Vec<AppView> = Vec::new();
    for row in db.query(
        &format!(
            "SELECT a.name, a.platform, a.state, a.ip, a.cname, u.name, u.ip, u.state \
             FROM apps a LEFT JOIN units u ON u.app = a.name{filter} ORDER BY a.name, u.number"
        ),
        &args,
    )? {
        let name = row.text(0);
        if apps.last().is_none_or(|app| app.name != name) {
            apps.push(AppView::new(
                &git_host,
                name,
                row.text(1),
                row.text(2),
                row.text(3),
                row.text(4),
            ));
        }
        if let (Some(app), Some(unit)) = (apps.last_mut(), row.opt_text(5)) {
            app.units.push(UnitView {
                name: unit,
                ip: row.text(6),
                state: row.text(7),
            });
        }
    }
    let position: HashMap<String, usize> = apps
        .iter()
        .enumerate()
        .map(|(i, app)| (app.name.clone(), i))
        .collect();
    let (filter, args) = scope.filter("app");
    for row in db.query(
        &format!("SELECT app, team FROM app_teams{filter} ORDER BY app, team"),
        &args,
    )? {
        if let Some(&i) = position.get(&row.text(0)) {
            apps[i].teams.push(row.text(1));
        }
    }
    Ok(apps)
}

/// `GET /apps`
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let scope = if user.is_admin {
        Scope::All
    } else {
        Scope::MemberOf(&user.email)
    };
    Ok(Response::json(&views(ctx, scope)?))
}

/// `GET /apps/:app`: the access check already read the app and its teams; one more
/// query reads its units.
pub fn info(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let mut view = AppView::new(
        &ctx.config.git_host(),
        app.name,
        app.platform,
        app.state,
        app.ip,
        app.cname,
    );
    view.teams = app.teams;
    view.units = units(ctx.db()?, &view.name)?;
    Ok(Response::json(&view))
}

// ---------------------------------------------------------------------------------------
// Creation and removal

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
    let user_quota = quotas::available(db, &c.owner)?;
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
        quotas::add_items(db, &c.owner, &[name.to_string()])?;
    }
    if let Some(limit) = c.units_quota {
        quotas::create(db, name, limit, &[quotas::unit_item(name, 0)])?;
    }
    for (variable, value) in [
        ("TSURU_APPNAME", name),
        ("TSURU_HOST", c.host.as_str()),
        ("TSURU_APP_TOKEN", c.token.as_str()),
    ] {
        app_env::set_private(db, name, variable, value, None)?;
    }
    Ok(serial)
}

/// Side effects 2–4 of `POST /apps`: token record, repository, first unit.
fn set_up(ctx: &Ctx, c: &Creation, serial: i64, repository_created: &mut bool) -> ApiResult<()> {
    let failed = |reason: String| ApiError::bad_gateway(creation_failed(&c.name, &reason));
    auth::store_app_token(ctx.kv()?, &c.token, &c.name, Some(serial))?;
    let db = ctx.db()?;
    let users = repository_users(db, &c.name)?;
    gandalf::create_repository(ctx, &c.name, &users).map_err(failed)?;
    *repository_created = true;
    let env = app_env::values(db, &c.name)?;
    let first_unit = format!("{}/0", c.name);
    let provisioned =
        provisioner::provision(ctx, &c.name, &c.platform, &[first_unit], &env).map_err(failed)?;
    let stored = db.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE apps SET ip = ?, state = 'ready' WHERE name = ?",
            params![provisioned.ip.as_str(), c.name.as_str()],
        )?;
        let quota_item = c.units_quota.map(|_| quotas::unit_item(&c.name, 0));
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
    let token = ctx.kv().and_then(|kv| auth::delete_token(kv, &c.token));
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

pub(crate) fn insert_unit(
    db: &Db,
    app: &str,
    number: i64,
    unit: &provisioner::UnitStatus,
    quota_item: Option<&str>,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO units (app, number, name, ip, state, quota_item) VALUES (?, ?, ?, ?, ?, ?)",
        params![
            app,
            number,
            unit.name.as_str(),
            unit.ip.as_str(),
            unit.state.as_str(),
            quota_item
        ],
    )
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
    quotas::release(db, owner, &[app.to_string()])?;
    quotas::delete(db, app)
}

/// `DELETE /apps/:app`
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    instances::unbind_app_everywhere(ctx, &app.name);
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

// ---------------------------------------------------------------------------------------
// Restart and swap

/// `GET` and `POST /apps/:app/restart`
pub fn restart(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let db = ctx.db()?;
    let env = app_env::values(db, &app.name)?;
    provisioner::restart(ctx, &app.name, &env).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to restart the app \"{}\": {reason}",
            app.name
        ))
    })?;
    app_logs::record(db, &app.name, &["Restarting app".to_string()]);
    audit::record(ctx, "restart", &app.name, json!({}));
    Ok(Response::text("\n ---> Restarting your app\n"))
}

/// `PUT /swap?app1=&app2=`
pub fn swap(ctx: &mut Ctx) -> ApiResult<Response> {
    let name1 = ctx.req.query_param("app1").unwrap_or_default().to_string();
    let name2 = ctx.req.query_param("app2").unwrap_or_default().to_string();
    let app1 = load_for_user(ctx, &name1)?;
    let app2 = load_for_user(ctx, &name2)?;
    if app1.name == app2.name {
        return Err(ApiError::bad_request(
            "An app cannot be swapped with itself.",
        ));
    }
    provisioner::swap(ctx, &app1.name, &app2.name).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to swap the apps {} and {}: {reason}",
            app1.name, app2.name
        ))
    })?;
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let address = |name: &str| -> ApiResult<(String, String)> {
            let row = db
                .query_opt("SELECT ip, cname FROM apps WHERE name = ?", params![name])?
                .ok_or_else(|| not_found(name))?;
            Ok((row.text(0), row.text(1)))
        };
        let (ip1, cname1) = address(&app1.name)?;
        let (ip2, cname2) = address(&app2.name)?;
        // Clear one cname first: the unique index must hold after every statement.
        db.execute(
            "UPDATE apps SET cname = '' WHERE name = ?",
            params![app1.name.as_str()],
        )?;
        for (name, ip, cname) in [(&app2.name, ip1, cname1), (&app1.name, ip2, cname2)] {
            db.execute(
                "UPDATE apps SET ip = ?, cname = ? WHERE name = ?",
                params![ip, cname, name.as_str()],
            )?;
        }
        Ok(())
    })?;
    audit::record(ctx, "swap", &app1.name, json!({"app2": app2.name}));
    Ok(Response::empty())
}

// ---------------------------------------------------------------------------------------
// Team access

/// `PUT /apps/:app/:team`
pub fn grant(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let team = ctx.param("team").to_string();
    let db = ctx.db()?;
    if !teams::team_exists(db, &team)? {
        return Err(ApiError::not_found("Team not found"));
    }
    let already = || ApiError::conflict("This team already has access to this app");
    if app.teams.contains(&team) {
        return Err(already());
    }
    match link_team(db, &app.name, &team) {
        Err(e) if e.is_unique_violation() => return Err(already()),
        other => other?,
    }
    let members = teams::members(db, &team)?;
    if let Err(reason) = gandalf::grant(ctx, std::slice::from_ref(&app.name), &members) {
        unlink_team(db, &app.name, &team)?;
        return Err(ApiError::bad_gateway(format!(
            "Failed to grant access in the git server: {reason}."
        )));
    }
    audit::record(ctx, "grant-app-access", &app.name, json!({"team": team}));
    Ok(Response::empty())
}

/// `DELETE /apps/:app/:team`
pub fn revoke(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let team = ctx.param("team").to_string();
    let db = ctx.db()?;
    if !teams::team_exists(db, &team)? {
        return Err(ApiError::not_found("Team not found"));
    }
    // The checks run again inside the transaction so two revokes cannot orphan the app.
    let users = db.transaction(|db| -> ApiResult<Vec<String>> {
        let count = db
            .query_opt("SELECT COUNT(*) FROM app_teams WHERE app = ?", params![app.name.as_str()])?
            .map_or(0, |r| r.int(0));
        if count == 1 {
            return Err(ApiError::forbidden(
                "You can not revoke the access from this team, because it is the unique team with access to the app, and an app can not be orphaned",
            ));
        }
        unlink_team(db, &app.name, &team)?;
        if db.changes()? == 0 {
            return Err(ApiError::not_found("This team does not have access to this app"));
        }
        // Members who keep no other team on the app lose the repository.
        Ok(db
            .query(
                "SELECT m.email FROM team_members m WHERE m.team = ? AND NOT EXISTS \
                 (SELECT 1 FROM app_teams t JOIN team_members o ON o.team = t.team \
                  WHERE t.app = ? AND o.email = m.email) ORDER BY m.email",
                params![team.as_str(), app.name.as_str()],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect())
    })?;
    if !users.is_empty() {
        if let Err(reason) = gandalf::revoke(ctx, std::slice::from_ref(&app.name), &users) {
            link_team(db, &app.name, &team)?;
            return Err(ApiError::bad_gateway(format!(
                "Failed to revoke access in the git server: {reason}"
            )));
        }
    }
    audit::record(ctx, "revoke-app-access", &app.name, json!({"team": team}));
    Ok(Response::empty())
}

fn link_team(db: &Db, app: &str, team: &str) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO app_teams (app, team) VALUES (?, ?)",
        params![app, team],
    )
}

fn unlink_team(db: &Db, app: &str, team: &str) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM app_teams WHERE app = ? AND team = ?",
        params![app, team],
    )
}

// ---------------------------------------------------------------------------------------
// CName

/// `POST /apps/:app/cname`
pub fn set_cname(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: serde_json::Map<String, serde_json::Value> =
        ctx.json_object("Invalid JSON in request body.")?;
    let cname = match body.get("cname") {
        None => return Err(ApiError::bad_request("You must provide the cname.")),
        Some(serde_json::Value::String(cname)) => cname.clone(),
        Some(_) => return Err(ApiError::invalid_json()),
    };
    let app = load_for_user(ctx, ctx.param("app"))?;
    if !cname.is_empty() && !is_cname(&cname) {
        return Err(ApiError::bad_request("Invalid cname"));
    }
    let in_use = || ApiError::conflict(format!("The cname \"{cname}\" is already in use."));
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let taken = !cname.is_empty()
            && db.exists(
                "SELECT 1 FROM apps WHERE cname = ? AND name <> ?",
                params![cname.as_str(), app.name.as_str()],
            )?;
        if taken {
            return Err(in_use());
        }
        store_cname(db, &app.name, &cname)?;
        Ok(())
    })?;
    audit::record(ctx, "set-cname", &app.name, json!({"cname": cname}));
    Ok(Response::empty())
}

/// `DELETE /apps/:app/cname`
pub fn unset_cname(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    store_cname(ctx.db()?, &app.name, "")?;
    audit::record(ctx, "unset-cname", &app.name, json!({}));
    Ok(Response::empty())
}

fn store_cname(db: &Db, app: &str, cname: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE apps SET cname = ? WHERE name = ?",
        params![cname, app],
    )
}

// ---------------------------------------------------------------------------------------
// Logs and availability (app-ok routes)

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
        Some(value) => value.parse::<i64>().unwrap_or(app_logs::MAX_LINES),
    };
    let source = ctx
        .req
        .query_param("source")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let app = load_for_user(ctx, ctx.param("app"))?;
    let filter = app_logs::LogFilter {
        app: &app.name,
        after: app.logs_after,
        source: source.as_deref(),
    };
    let db = ctx.db()?;
    let follow = ctx.req.query_param("follow") == Some("1");
    let newest = if follow {
        app_logs::newest_id(db, &app.name)?
    } else {
        i64::MAX
    };
    let entries = app_logs::read(db, &filter, lines, newest)?;
    audit::record(ctx, "app-log", &app.name, json!({}));
    if !follow {
        return Ok(Response::json(&entries));
    }
    // The array as the first line, then every later entry on its own line (API.md 3.1).
    let mut first = Response::json(&entries);
    first.body.push(b'\n');
    Ok(first.streaming(Box::new(move |ctx, write| {
        let filter = app_logs::LogFilter {
            app: &app.name,
            after: app.logs_after,
            source: source.as_deref(),
        };
        match ctx.db() {
            Ok(db) => app_logs::follow(db, &filter, newest, write),
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
    app_logs::append(ctx.db()?, &app.name, source, &lines)?;
    Ok(Response::empty())
}

/// `GET /apps/:app/available`
pub fn available(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_caller(ctx, ctx.param("app"))?;
    let available = ctx.db()?.exists(
        "SELECT 1 FROM units WHERE app = ? AND state IN ('started', 'unreachable')",
        params![app.name.as_str()],
    )?;
    if !available {
        return Err(ApiError::precondition_failed(
            "App must be available to receive pushs.",
        ));
    }
    Ok(Response::empty())
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

    #[test]
    fn cnames() {
        for ok in ["www.example.com", "a_b", "9x", &"a".repeat(253)] {
            assert!(is_cname(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            ".example.com",
            "_x",
            "a b",
            "é.com",
            &"a".repeat(254),
        ] {
            assert!(!is_cname(bad), "{bad}");
        }
    }
}
