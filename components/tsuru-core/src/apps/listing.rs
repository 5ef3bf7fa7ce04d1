//! The app object of API.md 3.1 and the routes that show it: `GET /apps` and
//! `GET /apps/:app`, each one statement after authentication.

use crate::apps::records::{access_params, load_for_user, repository_url, App, APP_COLUMNS};
use crate::runtime::context::Ctx;
use crate::runtime::error::ApiResult;
use crate::runtime::response::Response;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UnitView {
    name: String,
    ip: String,
    state: String,
}

/// The app object of API.md 3.1.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppView {
    name: String,
    framework: String,
    platform: String,
    repository: String,
    state: String,
    ip: String,
    #[serde(rename = "CName")]
    cname: String,
    teams: Vec<String>,
    units: Vec<UnitView>,
    ready: bool,
    owner: String,
    deploys: i64,
}

impl AppView {
    pub fn new(git_host: &str, app: App) -> Self {
        AppView {
            repository: repository_url(git_host, &app.name),
            framework: app.platform.clone(),
            platform: app.platform,
            ready: app.state == "ready",
            name: app.name,
            state: app.state,
            ip: app.ip,
            cname: app.cname,
            teams: app.teams,
            units: app
                .units
                .into_iter()
                .map(|u| UnitView {
                    name: u.name,
                    ip: u.ip,
                    state: u.state,
                })
                .collect(),
            owner: app.owner,
            deploys: app.deploys,
        }
    }
}

/// `GET /apps`: sorted by name; admins see every app, other users the apps sharing a
/// team with them (through the `team_members (user_id)` and `app_teams (team_id)`
/// indexes, so the cost follows the apps the user sees, not the size of the database).
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let filter = if user.is_admin {
        ""
    } else {
        " WHERE a.id IN (SELECT x.app_id FROM team_members m \
          JOIN app_teams x ON x.team_id = m.team_id WHERE m.user_id = ?1)"
    };
    let admin_team = ctx.config.admin_team();
    let rows = ctx.db()?.query(
        &format!("SELECT {APP_COLUMNS} FROM apps a{filter} ORDER BY a.name"),
        &access_params(Some(user), admin_team.as_deref()),
    )?;
    let git_host = ctx.config.git_host();
    let apps: Vec<AppView> = rows
        .iter()
        .map(|row| AppView::new(&git_host, App::from_row(row)))
        .collect();
    Ok(Response::json(&apps))
}

/// `GET /apps/:app`: the access check reads the whole app.
pub fn info(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    Ok(Response::json(&AppView::new(&ctx.config.git_host(), app)))
}
