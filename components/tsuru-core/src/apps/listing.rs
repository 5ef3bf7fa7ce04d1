//! The app object of API.md 3.1 and the routes that show it: `GET /apps` and
//! `GET /apps/:app`.

use crate::apps::records::{load_for_user, repository_url};
use crate::params;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, Value};
use crate::runtime::error::ApiResult;
use crate::runtime::response::Response;
use serde::Serialize;
use std::collections::HashMap;

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
    fn filter(&self, column: &str) -> (String, Vec<Value>) {
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
