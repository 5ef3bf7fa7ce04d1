//! The app record and its access rule (API.md 1.8): what every app route loads first.

use crate::params;
use crate::runtime::caller::{Caller, User};
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};

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
pub fn load_for_caller(ctx: &Ctx, name: &str) -> ApiResult<App> {
    match ctx.caller()? {
        Caller::User(_) => load_for_user(ctx, name),
        Caller::App(_) => load(ctx.db()?, name),
    }
}

/// `git@<git_host>:<app>.git`
pub fn repository_url(git_host: &str, app: &str) -> String {
    format!("git@{git_host}:{app}.git")
}
