//! Teams and their members (API.md 3.8). Membership changes are mirrored to Gandalf as
//! repository grants and revokes, and undone when Gandalf fails.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::upstream::gandalf;
use serde::Deserialize;
use serde_json::json;

fn team_not_found() -> ApiError {
    ApiError::not_found("Team not found")
}

/// A team's id by name (`None`: no such team).
pub fn team_id(db: &Db, team: &str) -> ApiResult<Option<i64>> {
    Ok(db
        .query_opt("SELECT id FROM teams WHERE name = ?", params![team])?
        .map(|r| r.int(0)))
}

/// The emails of a team's members, sorted.
pub fn member_emails(db: &Db, team_id: i64) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT u.email FROM team_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = ? ORDER BY u.email",
            params![team_id],
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
    let rows = ctx.db()?.query(
        "SELECT t.id, u.email FROM teams t LEFT JOIN team_members m ON m.team_id = t.id \
         LEFT JOIN users u ON u.id = m.user_id WHERE t.name = ? ORDER BY u.email",
        params![team.as_str()],
    )?;
    if rows.is_empty() {
        return Err(team_not_found());
    }
    if !ctx.user()?.in_team(&team) {
        return Err(ApiError::forbidden("User is not member of this team"));
    }
    let users: Vec<String> = rows.iter().filter_map(|r| r.opt_text(1)).collect();
    audit::record(ctx, "get-team", &team, json!({}));
    Ok(Response::json(&json!({ "name": team, "users": users })))
}

/// The most teams a user belongs to. Every request of the user reads them (API.md 1.8),
/// and any member of a team may add anyone to it: without a bound, another tenant could
/// slow every request a user makes. With the name's bound, a user's teams stay small.
pub const MAX_TEAMS_PER_USER: i64 = 1000;

/// The longest team name, in bytes.
pub const MAX_TEAM_NAME_BYTES: usize = 255;

/// Adds a membership unless the user already belongs to [`MAX_TEAMS_PER_USER`] teams:
/// the count is checked in the insert, under the write lock. Whether it was added.
fn insert_member(db: &Db, team_id: i64, user_id: i64) -> DbResult<bool> {
    Ok(!db
        .query(
            "INSERT INTO team_members (team_id, user_id) SELECT ?1, ?2 \
             WHERE (SELECT COUNT(*) FROM team_members WHERE user_id = ?2) < ?3 RETURNING 1",
            params![team_id, user_id, MAX_TEAMS_PER_USER],
        )?
        .is_empty())
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
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        // The name's uniqueness is the insert's to check: one statement fewer under the
        // write lock. The admin team's name is refused after it, inside the transaction,
        // so an existing admin team still answers 409 as it always has.
        let inserted = db.query(
            "INSERT INTO teams (name, created_at) VALUES (?, ?) RETURNING id",
            params![name.as_str(), now_rfc3339()],
        );
        let id = match inserted {
            Err(e) if e.is_unique_violation() => {
                return Err(ApiError::conflict("Team already exists"))
            }
            other => other?.first().map_or(0, |r| r.int(0)),
        };
        if admin_team.as_deref() == Some(name.as_str()) {
            return Err(ApiError::forbidden(format!(
                "Team name \"{name}\" is reserved."
            )));
        }
        let added = insert_member(db, id, user.id).map_err(|e| {
            if e.is_foreign_key_violation() {
                ApiError::invalid_token()
            } else {
                e.into()
            }
        })?;
        if !added {
            return Err(ApiError::bad_request(format!(
                "Too many teams: a user may belong to at most {MAX_TEAMS_PER_USER} teams."
            )));
        }
        audit::record_in(db, &user.email, "create-team", &name, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// `DELETE /teams/:team`: the checks and the removal in one transaction, so no app,
/// service or instance gains the team meanwhile (API.md 8.1). The delete checks them
/// itself, taking the write lock with no read before it; only when it removes nothing is
/// the team read, to say why.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let team = ctx.param("team").to_string();
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    let is_admin_team = admin_team.as_deref() == Some(team.as_str());
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let removed = db.query_opt(
            &format!(
                "DELETE FROM teams AS t WHERE t.name = ?1 AND NOT ?3 \
                 AND EXISTS (SELECT 1 FROM team_members m \
                  WHERE m.team_id = t.id AND m.user_id = ?2) \
                 AND NOT {IN_USE_BY_APPS} AND NOT {IN_USE_BY_SERVICES} RETURNING id"
            ),
            params![team.as_str(), user.id, is_admin_team],
        )?;
        if removed.is_none() {
            return Err(why_not_removed(db, &team, user.id, is_admin_team)?);
        }
        audit::record_in(db, &user.email, "remove-team", &team, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// Whether team `t` is linked to an app, or to a service or service instance.
const IN_USE_BY_APPS: &str = "EXISTS (SELECT 1 FROM app_teams WHERE team_id = t.id)";
const IN_USE_BY_SERVICES: &str = "EXISTS (SELECT 1 FROM service_owner_teams \
     WHERE team_id = t.id UNION ALL SELECT 1 FROM service_teams WHERE team_id = t.id \
     UNION ALL SELECT 1 FROM instance_teams WHERE team_id = t.id)";

/// Why `DELETE /teams/:team` removed nothing: the team is missing or the caller not in
/// it (404), it is the admin team, or something still uses it (403).
fn why_not_removed(db: &Db, team: &str, user_id: i64, is_admin_team: bool) -> ApiResult<ApiError> {
    let found = db.query_opt(
        &format!(
            "SELECT {IN_USE_BY_APPS}, {IN_USE_BY_SERVICES} \
             FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE t.name = ? AND m.user_id = ?"
        ),
        params![team, user_id],
    )?;
    Ok(match found {
        None => ApiError::not_found(format!("Team \"{team}\" not found.")),
        Some(_) if is_admin_team => ApiError::forbidden("The admin team cannot be removed."),
        Some(row) if row.bool(0) => ApiError::forbidden(
            "This team cannot be removed because it have access to apps.\n\nPlease remove the apps or revoke these accesses, and try again.",
        ),
        Some(row) if row.bool(1) => ApiError::forbidden(
            "This team cannot be removed because it has access to services or service instances.",
        ),
        // Unreachable inside the transaction: the delete saw the same rows.
        Some(_) => ApiError::conflict(format!("Team \"{team}\" changed; try again.")),
    })
}

/// The team and user a membership change names, checked in its transaction: the team
/// exists (404), the caller is a member (403, `refused`), the user exists (404).
struct MemberChange {
    team_id: i64,
    user_id: i64,
    /// Members of the team, by user id.
    members: Vec<i64>,
}

fn member_change(db: &Db, ctx: &Ctx, refused: &str) -> ApiResult<MemberChange> {
    let (team, email) = (ctx.param("team"), ctx.param("user"));
    let caller = ctx.user()?;
    let team_id = team_id(db, team)?.ok_or_else(team_not_found)?;
    let members: Vec<i64> = db
        .query(
            "SELECT user_id FROM team_members WHERE team_id = ?",
            params![team_id],
        )?
        .iter()
        .map(|r| r.int(0))
        .collect();
    if !members.contains(&caller.id) {
        return Err(ApiError::forbidden(format!("{refused} {team}")));
    }
    let user_id = db
        .query_opt("SELECT id FROM users WHERE email = ?", params![email])?
        .map(|r| r.int(0));
    Ok(MemberChange {
        team_id,
        user_id: user_id.unwrap_or(0),
        members,
    })
}

/// The apps a team has access to, by name.
fn team_apps(db: &Db, team_id: i64) -> ApiResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT a.name FROM app_teams x JOIN apps a ON a.id = x.app_id \
             WHERE x.team_id = ? ORDER BY a.name",
            params![team_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// `PUT /teams/:team/:user`
pub fn add_member(ctx: &mut Ctx) -> ApiResult<Response> {
    let (team, email) = (ctx.param("team").to_string(), ctx.param("user").to_string());
    let (with_git, actor) = (
        gandalf::is_configured(ctx),
        audit::actor(ctx.caller.as_ref()),
    );
    let event = json!({ "user": email });
    let (change, apps) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let change = member_change(
            db,
            ctx,
            "You are not authorized to add new users to the team",
        )?;
        if change.user_id == 0 {
            return Err(ApiError::not_found("User not found"));
        }
        if change.members.contains(&change.user_id) {
            return Err(ApiError::conflict(format!(
                "User {email} is already in the team {team}."
            )));
        }
        if !insert_member(db, change.team_id, change.user_id)? {
            return Err(ApiError::bad_request(format!(
                "Too many teams: user {email} already belongs to {MAX_TEAMS_PER_USER} teams, the most a user may."
            )));
        }
        // The repositories the git server must open to the new member.
        let apps = match with_git {
            true => team_apps(db, change.team_id)?,
            false => Vec::new(),
        };
        if apps.is_empty() {
            // Nothing to tell the git server: the event commits with the change.
            audit::record_in(db, &actor, "add-user-to-team", &team, event.clone());
        }
        Ok((change, apps))
    })?;
    if !apps.is_empty() {
        if let Err(reason) = gandalf::grant(ctx, &apps, std::slice::from_ref(&email)) {
            ctx.db()?.write(
                "DELETE FROM team_members WHERE team_id = ? AND user_id = ?",
                params![change.team_id, change.user_id],
            )?;
            return Err(ApiError::bad_gateway(format!(
                "Failed to grant access to git repositories: {reason}"
            )));
        }
        audit::record(ctx, "add-user-to-team", &team, event);
    }
    Ok(Response::empty())
}

/// `DELETE /teams/:team/:user`
pub fn remove_member(ctx: &mut Ctx) -> ApiResult<Response> {
    let (team, email) = (ctx.param("team").to_string(), ctx.param("user").to_string());
    let (with_git, actor) = (
        gandalf::is_configured(ctx),
        audit::actor(ctx.caller.as_ref()),
    );
    let event = json!({ "user": email });
    let (change, lost) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let change = member_change(
            db,
            ctx,
            "You are not authorized to remove a member from the team",
        )?;
        if change.members.len() <= 1 {
            return Err(ApiError::forbidden(
                "You can not remove this user from this team, because it is the last user within the team, and a team can not be orphaned",
            ));
        }
        if change.user_id == 0 {
            return Err(ApiError::not_found("User not found"));
        }
        if !change.members.contains(&change.user_id) {
            return Err(ApiError::not_found(format!(
                "User {email} is not in the team {team}."
            )));
        }
        db.execute(
            "DELETE FROM team_members WHERE team_id = ? AND user_id = ?",
            params![change.team_id, change.user_id],
        )?;
        // The repositories the git server must close to the user: those of the apps it
        // no longer reaches through another team.
        let lost: Vec<String> = match with_git {
            true => db
                .query(
                    "SELECT a.name FROM app_teams x JOIN apps a ON a.id = x.app_id \
                     WHERE x.team_id = ?1 AND NOT EXISTS (SELECT 1 FROM app_teams o \
                     JOIN team_members m ON m.team_id = o.team_id \
                     WHERE o.app_id = x.app_id AND m.user_id = ?2) ORDER BY a.name",
                    params![change.team_id, change.user_id],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect(),
            false => Vec::new(),
        };
        if lost.is_empty() {
            // Nothing to tell the git server: the event commits with the change.
            audit::record_in(db, &actor, "remove-user-from-team", &team, event.clone());
        }
        Ok((change, lost))
    })?;
    if !lost.is_empty() {
        if let Err(reason) = gandalf::revoke(ctx, &lost, std::slice::from_ref(&email)) {
            let restored = ctx.db()?.write(
                "INSERT OR IGNORE INTO team_members (team_id, user_id) VALUES (?, ?)",
                params![change.team_id, change.user_id],
            );
            if let Err(undo) = restored {
                eprintln!("restoring a membership of team {team} failed: {undo}");
            }
            return Err(ApiError::bad_gateway(format!(
                "Failed to revoke access from git repositories: {reason}"
            )));
        }
        audit::record(ctx, "remove-user-from-team", &team, event);
    }
    Ok(Response::empty())
}

/// `^[a-zA-Z][-@_.+\w\s]+$` with ASCII `\w` (API.md 3.8), on the trimmed name, of at
/// most [`MAX_TEAM_NAME_BYTES`].
pub fn is_team_name(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    // `\s` as in the reference's Go regexp: ASCII whitespace without `\v`.
    value.len() <= MAX_TEAM_NAME_BYTES
        && first.is_ascii_alphabetic()
        && !rest.is_empty()
        && rest.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '@' | '_' | '.' | '+' | ' ' | '\t' | '\n' | '\x0C' | '\r'
                )
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
        let longest = format!("t{}", "x".repeat(MAX_TEAM_NAME_BYTES - 1));
        for ok in [
            "backend",
            "my team",
            "a1",
            "ops@corp.com",
            "x-y_z.w+v",
            "a\tb",
        ] {
            assert!(is_team_name(ok), "{ok}");
        }
        assert!(is_team_name(&longest));
        assert!(!is_team_name(&format!("{longest}x")));
        // Go's `\s` is ASCII and leaves out `\v`.
        for bad in [
            "",
            "a",
            "1team",
            "-x",
            "team!",
            "tëam",
            "a\u{3000}b",
            "a\u{a0}b",
            "a\x0Bb",
        ] {
            assert!(!is_team_name(bad), "{bad}");
        }
    }
}
