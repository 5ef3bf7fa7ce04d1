//! The app record and its access rule (API.md 1.8): what every app route loads first.
//! An app is its row's id, never reused: everything that belongs to it refers to that
//! id and goes with it (foreign keys), so an app created later with the same name starts
//! clean (API.md 8.1). Write routes load the app inside their transaction, so its
//! existence and the caller's access hold until they commit.

use crate::runtime::caller::{Caller, User};
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, Row, Value};
use crate::runtime::error::{ApiError, ApiResult};
use serde::Deserialize;

/// An app row, its teams (sorted) and units (by number), and whether the caller may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub platform: String,
    pub ip: String,
    pub cname: String,
    pub owner: String,
    pub state: String,
    pub deploys: i64,
    pub teams: Vec<String>,
    pub units: Vec<Unit>,
    /// App access for the user the app was loaded for (API.md 1.8).
    pub accessible: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unit {
    pub number: i64,
    pub name: String,
    pub ip: String,
    pub state: String,
}

/// App access as SQL (API.md 1.8), `a` being the app's row, `?1` the user's id (NULL for
/// none) and `?2` the admin team's name: a team of the app lists the user, or the user is
/// an admin.
macro_rules! app_access {
    () => {
        "(EXISTS (SELECT 1 FROM app_teams x JOIN team_members m ON m.team_id = x.team_id \
          WHERE x.app_id = a.id AND m.user_id = ?1) \
         OR EXISTS (SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id \
          WHERE m.user_id = ?1 AND t.name = ?2))"
    };
}

/// App access as SQL, as [`APP_COLUMNS`] computes it.
pub const ACCESS: &str = app_access!();

/// The columns of [`App`], `a` being the app's row, in the order [`App::from_row`] reads
/// them; `?1` and `?2` as in [`ACCESS`].
pub const APP_COLUMNS: &str = concat!(
    "a.id, a.name, a.platform, a.ip, a.cname, a.owner, a.state, a.deploys, \
     (SELECT json_group_array(t.name) FROM app_teams x JOIN teams t ON t.id = x.team_id \
      WHERE x.app_id = a.id), \
     (SELECT json_group_array(json_array(u.number, u.name, u.ip, u.state)) FROM units u \
      WHERE u.app_id = a.id), ",
    app_access!()
);

/// How many columns [`APP_COLUMNS`] has: a query's own columns come after them.
pub const APP_COLUMN_COUNT: usize = 11;

impl App {
    /// Reads the columns of [`APP_COLUMNS`].
    pub fn from_row(row: &Row) -> App {
        let mut teams: Vec<String> = serde_json::from_str(&row.text(8)).unwrap_or_default();
        teams.sort();
        let mut units: Vec<Unit> =
            serde_json::from_str::<Vec<(i64, String, String, String)>>(&row.text(9))
                .unwrap_or_default()
                .into_iter()
                .map(|(number, name, ip, state)| Unit {
                    number,
                    name,
                    ip,
                    state,
                })
                .collect();
        units.sort_by_key(|u| u.number);
        App {
            id: row.int(0),
            name: row.text(1),
            platform: row.text(2),
            ip: row.text(3),
            cname: row.text(4),
            owner: row.text(5),
            state: row.text(6),
            deploys: row.int(7),
            teams,
            units,
            accessible: row.bool(10),
        }
    }
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("App {name} not found."))
}

pub fn no_access() -> ApiError {
    ApiError::forbidden("User does not have access to this app")
}

/// The parameters of [`APP_COLUMNS`] for `user` (none for an app token).
pub fn access_params(user: Option<&User>, admin_team: Option<&str>) -> [Value; 2] {
    [
        Value::from(user.map(|u| u.id)),
        Value::from(admin_team.map(str::to_string)),
    ]
}

/// What a read of one app selects beyond [`APP_COLUMNS`]: SQL columns (`, ...`, each
/// may use `?1` and `?2` as there, `?3` for the app's name, and `?4` on for `params`),
/// read from [`APP_COLUMN_COUNT`] on.
#[derive(Default)]
pub struct Extra<'a> {
    pub columns: &'a str,
    pub params: Vec<Value>,
}

/// Loads app `name` with `extra` columns, in one statement. `404 App <name> not found.`
pub fn load_with(
    db: &Db,
    name: &str,
    user: Option<&User>,
    admin_team: Option<&str>,
    extra: Extra,
) -> ApiResult<(App, Row)> {
    let [user_id, admin] = access_params(user, admin_team);
    let sql = format!(
        "SELECT {APP_COLUMNS}{} FROM apps a WHERE a.name = ?3",
        extra.columns
    );
    let mut params = vec![user_id, admin, Value::from(name)];
    params.extend(extra.params);
    let row = db
        .query_opt(&sql, &params)?
        .ok_or_else(|| not_found(name))?;
    Ok((App::from_row(&row), row))
}

/// [`load_with`] for `user`: 404, then `403 User does not have access to this app`.
pub fn load_for_with(
    db: &Db,
    name: &str,
    user: &User,
    admin_team: Option<&str>,
    extra: Extra,
) -> ApiResult<(App, Row)> {
    let (app, row) = load_with(db, name, Some(user), admin_team, extra)?;
    if !app.accessible {
        return Err(no_access());
    }
    Ok((app, row))
}

/// Loads app `name` for `user`: 404, then `403 User does not have access to this app`.
/// Inside a transaction, the check holds until it commits.
pub fn load_for(db: &Db, name: &str, user: &User, admin_team: Option<&str>) -> ApiResult<App> {
    Ok(load_for_with(db, name, user, admin_team, Extra::default())?.0)
}

/// [`load_for`] the request's user.
pub fn load_for_user(ctx: &Ctx, name: &str) -> ApiResult<App> {
    load_for(
        ctx.db()?,
        name,
        ctx.user()?,
        ctx.config.admin_team().as_deref(),
    )
}

/// On `app-ok` routes: a user token needs app access; app tokens were checked by the route.
pub fn load_for_caller(ctx: &Ctx, name: &str) -> ApiResult<App> {
    match ctx.caller()? {
        Caller::User(_) => load_for_user(ctx, name),
        Caller::App(_) => Ok(load_with(ctx.db()?, name, None, None, Extra::default())?.0),
    }
}

/// What most write routes need of an app: its id and name, the caller's access checked.
/// Read without the teams and units an [`App`] gathers: inside a write transaction every
/// statement holds the database's write lock, so the check there must cost little.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRef {
    pub id: i64,
    pub name: String,
}

/// Checks app `name` for `user` (`None`: an app token, checked by its route) in one
/// light statement: `404 App <name> not found.`, then `403`.
fn load_ref(
    db: &Db,
    name: &str,
    user: Option<&User>,
    admin_team: Option<&str>,
) -> ApiResult<AppRef> {
    let [user_id, admin] = access_params(user, admin_team);
    let row = db
        .query_opt(
            &format!("SELECT a.id, {ACCESS} FROM apps a WHERE a.name = ?3"),
            &[user_id, admin, Value::from(name)],
        )?
        .ok_or_else(|| not_found(name))?;
    if user.is_some() && !row.bool(1) {
        return Err(no_access());
    }
    Ok(AppRef {
        id: row.int(0),
        name: name.to_string(),
    })
}

/// App `name` as a write statement finds it, checking the caller itself: the check and
/// the write are one statement under the write lock instead of two. The statement puts
/// [`WriteTarget::CONDITION`] on the app's row `a`, with [`WriteTarget::params`] as `?1`
/// to `?4`: `?4` is NULL for a user (app access is checked), else the id an app token
/// names, which the row must have (0 for a system token, which names no app id).
pub struct WriteTarget<'a> {
    name: &'a str,
    caller: WriteCaller<'a>,
}

enum WriteCaller<'a> {
    User(&'a User, Option<&'a str>),
    AppToken(Option<i64>),
}

impl<'a> WriteTarget<'a> {
    pub const CONDITION: &'static str = concat!(
        "a.name = ?3 AND CASE WHEN ?4 IS NULL THEN ",
        app_access!(),
        " ELSE ?4 IN (0, a.id) END"
    );

    /// For `user`, who needs app access.
    pub fn new(name: &'a str, user: &'a User, admin_team: Option<&'a str>) -> Self {
        WriteTarget {
            name,
            caller: WriteCaller::User(user, admin_team),
        }
    }

    /// For an app token the route checked by name; `app_id` is the app it was issued
    /// for, so that the token never writes to a namesake created after that app's removal.
    pub fn for_app_token(name: &'a str, app_id: Option<i64>) -> Self {
        WriteTarget {
            name,
            caller: WriteCaller::AppToken(app_id),
        }
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn params(&self) -> Vec<Value> {
        let (user, admin_team, token_app) = match self.caller {
            WriteCaller::User(user, admin_team) => (Some(user), admin_team, None),
            WriteCaller::AppToken(id) => (None, None, Some(id.unwrap_or(0))),
        };
        let [user_id, admin] = access_params(user, admin_team);
        vec![
            user_id,
            admin,
            Value::from(self.name),
            Value::from(token_app),
        ]
    }

    /// For a write that matched no row: `404` or `403` as [`load_ref`] says, `401` for an
    /// app token of a removed app, or the app when the caller may use it (the write had
    /// nothing to change).
    pub fn explain(&self, db: &Db) -> ApiResult<AppRef> {
        match self.caller {
            WriteCaller::User(user, admin_team) => load_ref(db, self.name, Some(user), admin_team),
            WriteCaller::AppToken(token_app) => {
                let app = load_ref(db, self.name, None, None)?;
                if token_app.is_some_and(|id| id != app.id) {
                    return Err(ApiError::invalid_token());
                }
                Ok(app)
            }
        }
    }
}

/// [`load_ref`] for the request's user; inside a transaction the check holds until it
/// commits.
pub fn load_ref_for(
    db: &Db,
    name: &str,
    user: &User,
    admin_team: Option<&str>,
) -> ApiResult<AppRef> {
    load_ref(db, name, Some(user), admin_team)
}

/// `git@<git_host>:<app>.git`
pub fn repository_url(git_host: &str, app: &str) -> String {
    format!("git@{git_host}:{app}.git")
}
