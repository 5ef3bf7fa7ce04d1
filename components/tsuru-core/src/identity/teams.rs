//! Teams and their members (API.md 3.8). Membership changes are mirrored to Gandalf as
//! repository grants and revokes, and undone when Gandalf fails.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::upstream::gandalf;
use serde::Deserialize;
use serde_json::json;

fn team_not_found() -> ApiError {
    ApiError::not_found("Team not found")
}

pub fn team_exists(db: &Db, team: &str) -> ApiResult<bool> {
    Ok(db.exists("SELECT 1 FROM teams WHERE name = ?", params![team])?)
}

pub fn members(db: &Db, team: &str) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT email FROM team_members WHERE team = ? ORDER BY email",
            params![team],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

fn team_apps(db: &Db, team: &str) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT app FROM app_teams WHERE team = ? ORDER BY app",
            params![team],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// `GET /teams`
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let teams: Vec<_> = ctx
        .user()?
        .teams
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    audit::record(ctx, "list-teams", "", json!({}));
    Ok(Response::json(&teams))
}

/// `GET /teams/:team`
pub fn info(ctx: &mut Ctx) -> ApiResult<Response> {
    let team = ctx.param("team").to_string();
    if !team_exists(ctx.db()?, &team)? {
        return Err(team_not_found());
    }
    if !ctx.user()?.in_team(&team) {
        return Err(ApiError::forbidden("User is not member of this team"));
    }
    let users = members(ctx.db()?, &team)?;
    audit::record(ctx, "get-team", &team, json!({}));
    Ok(Response::json(&json!({ "name": team, "users": users })))
}

#[derive(Deserialize)]
struct NewTeam {
    name: Option<String>,
}

/// `POST /teams`
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: NewTeam = ctx.json_object("Invalid JSON in request body.")?;
    let name = body.name.unwrap_or_default().trim().to_string();
    if !is_team_name(&name) || is_shadowed_team_name(&name) {
        return Err(ApiError::bad_request("Invalid team name"));
    }
    let db = ctx.db()?;
    let exists = || ApiError::conflict("Team already exists");
    if team_exists(db, &name)? {
        return Err(exists());
    }
    if ctx.config.admin_team().as_deref() == Some(name.as_str()) {
        return Err(ApiError::forbidden(format!(
            "Team name \"{name}\" is reserved."
        )));
    }
    let email = ctx.user()?.email.clone();
    let created = db.transaction(|db| {
        db.execute(
            "INSERT INTO teams (name, created_at) VALUES (?, ?)",
            params![name.as_str(), now_rfc3339()],
        )?;
        db.execute(
            "INSERT INTO team_members (team, email) VALUES (?, ?)",
            params![name.as_str(), email.as_str()],
        )
    });
    match created {
        Err(e) if e.is_unique_violation() => return Err(exists()),
        other => other?,
    }
    audit::record(ctx, "create-team", &name, json!({}));
    Ok(Response::empty())
}

/// `DELETE /teams/:team`
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let team = ctx.param("team").to_string();
    let db = ctx.db()?;
    if !team_exists(db, &team)? || !ctx.user()?.in_team(&team) {
        return Err(ApiError::not_found(format!("Team \"{team}\" not found.")));
    }
    if ctx.config.admin_team().as_deref() == Some(team.as_str()) {
        return Err(ApiError::forbidden("The admin team cannot be removed."));
    }
    if db.exists(
        "SELECT 1 FROM app_teams WHERE team = ?",
        params![team.as_str()],
    )? {
        return Err(ApiError::forbidden(
            "This team cannot be removed because it have access to apps.\n\nPlease remove the apps or revoke these accesses, and try again.",
        ));
    }
    let referenced = db.exists(
        "SELECT 1 FROM service_owner_teams WHERE team = ?1 \
         UNION ALL SELECT 1 FROM service_teams WHERE team = ?1 \
         UNION ALL SELECT 1 FROM instance_teams WHERE team = ?1",
        params![team.as_str()],
    )?;
    if referenced {
        return Err(ApiError::forbidden(
            "This team cannot be removed because it has access to services or service instances.",
        ));
    }
    db.transaction(|db| {
        db.execute(
            "DELETE FROM team_members WHERE team = ?",
            params![team.as_str()],
        )?;
        db.execute("DELETE FROM teams WHERE name = ?", params![team.as_str()])
    })?;
    audit::record(ctx, "remove-team", &team, json!({}));
    Ok(Response::empty())
}

/// The checks shared by adding and removing a member: the team exists and the caller
/// is one of its members.
fn member_change_target(ctx: &Ctx, refused: &str) -> ApiResult<(String, String)> {
    let team = ctx.param("team").to_string();
    if !team_exists(ctx.db()?, &team)? {
        return Err(team_not_found());
    }
    if !ctx.user()?.in_team(&team) {
        return Err(ApiError::forbidden(format!("{refused} {team}")));
    }
    Ok((team, ctx.param("user").to_string()))
}

fn is_member(db: &Db, team: &str, email: &str) -> ApiResult<bool> {
    Ok(db.exists(
        "SELECT 1 FROM team_members WHERE team = ? AND email = ?",
        params![team, email],
    )?)
}

/// `PUT /teams/:team/:user`
pub fn add_member(ctx: &mut Ctx) -> ApiResult<Response> {
    let (team, email) =
        member_change_target(ctx, "You are not authorized to add new users to the team")?;
    let db = ctx.db()?;
    if !db.exists(
        "SELECT 1 FROM users WHERE email = ?",
        params![email.as_str()],
    )? {
        return Err(ApiError::not_found("User not found"));
    }
    let already = || ApiError::conflict(format!("User {email} is already in the team {team}."));
    if is_member(db, &team, &email)? {
        return Err(already());
    }
    let added = db.execute(
        "INSERT INTO team_members (team, email) VALUES (?, ?)",
        params![team.as_str(), email.as_str()],
    );
    match added {
        Err(e) if e.is_unique_violation() => return Err(already()),
        other => other?,
    }
    let apps = team_apps(db, &team)?;
    if !apps.is_empty() {
        if let Err(reason) = gandalf::grant(ctx, &apps, std::slice::from_ref(&email)) {
            db.execute(
                "DELETE FROM team_members WHERE team = ? AND email = ?",
                params![team.as_str(), email.as_str()],
            )?;
            return Err(ApiError::bad_gateway(format!(
                "Failed to grant access to git repositories: {reason}"
            )));
        }
    }
    audit::record(ctx, "add-user-to-team", &team, json!({ "user": email }));
    Ok(Response::empty())
}

/// `DELETE /teams/:team/:user`
pub fn remove_member(ctx: &mut Ctx) -> ApiResult<Response> {
    let (team, email) = member_change_target(
        ctx,
        "You are not authorized to remove a member from the team",
    )?;
    let db = ctx.db()?;
    if members(db, &team)?.len() <= 1 {
        return Err(ApiError::forbidden(
            "You can not remove this user from this team, because it is the last user within the team, and a team can not be orphaned",
        ));
    }
    if !db.exists(
        "SELECT 1 FROM users WHERE email = ?",
        params![email.as_str()],
    )? {
        return Err(ApiError::not_found("User not found"));
    }
    if !is_member(db, &team, &email)? {
        return Err(ApiError::not_found(format!(
            "User {email} is not in the team {team}."
        )));
    }
    db.execute(
        "DELETE FROM team_members WHERE team = ? AND email = ?",
        params![team.as_str(), email.as_str()],
    )?;
    // Revoke only the apps the user no longer reaches through another team.
    let lost: Vec<String> = db
        .query(
            "SELECT at.app FROM app_teams at WHERE at.team = ?1 AND NOT EXISTS ( \
               SELECT 1 FROM app_teams other JOIN team_members m ON m.team = other.team \
               WHERE other.app = at.app AND m.email = ?2) ORDER BY at.app",
            params![team.as_str(), email.as_str()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect();
    if !lost.is_empty() {
        if let Err(reason) = gandalf::revoke(ctx, &lost, std::slice::from_ref(&email)) {
            db.execute(
                "INSERT OR IGNORE INTO team_members (team, email) VALUES (?, ?)",
                params![team.as_str(), email.as_str()],
            )?;
            return Err(ApiError::bad_gateway(format!(
                "Failed to revoke access from git repositories: {reason}"
            )));
        }
    }
    audit::record(
        ctx,
        "remove-user-from-team",
        &team,
        json!({ "user": email }),
    );
    Ok(Response::empty())
}

/// `^[a-zA-Z][-@_.+\w\s]+$` with ASCII `\w` (API.md 3.8), on the trimmed name.
pub fn is_team_name(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    first.is_ascii_alphabetic()
        && !rest.is_empty()
        && rest.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '@' | '_' | '.' | '+')
                || c.is_whitespace()
        })
}

/// Team names that a route literal would shadow (API.md 7.9).
pub fn is_shadowed_team_name(value: &str) -> bool {
    matches!(value, "units" | "env" | "cname" | "doc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_names() {
        for ok in ["backend", "my team", "a1", "ops@corp.com", "x-y_z.w+v"] {
            assert!(is_team_name(ok), "{ok}");
        }
        for bad in ["", "a", "1team", "-x", "team!", "tëam"] {
            assert!(!is_team_name(bad), "{bad}");
        }
    }
}
