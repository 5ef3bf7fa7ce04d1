//! Which teams may use an app (API.md 3.1 `PUT` and `DELETE /apps/:app/:team`),
//! mirrored to Gandalf as repository grants and revokes.

use crate::apps::records::load_for_user;
use crate::identity::teams;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbError};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::gandalf;
use serde_json::json;

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
