//! Which teams may use an app (API.md 3.1 `PUT` and `DELETE /apps/:app/:team`),
//! mirrored to Gandalf as repository grants and revokes.

use crate::apps::records::{load_for_with, App, Extra, WriteTarget, APP_COLUMN_COUNT};
use crate::identity::teams;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbError, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::gandalf;
use serde_json::json;

/// The app and team a revoke names, checked in its transaction with one
/// statement: app (404), access (403), team (`404 Team not found`).
fn app_and_team(db: &Db, ctx: &Ctx) -> ApiResult<(App, i64)> {
    let admin_team = ctx.config.admin_team();
    let (app, row) = load_for_with(
        db,
        ctx.param("app"),
        ctx.user()?,
        admin_team.as_deref(),
        Extra {
            columns: ", (SELECT id FROM teams WHERE name = ?4)",
            params: vec![Value::from(ctx.param("team"))],
        },
    )?;
    let team = row
        .opt_int(APP_COLUMN_COUNT)
        .ok_or_else(|| ApiError::not_found("Team not found"))?;
    Ok((app, team))
}

/// `PUT /apps/:app/:team`. The link's insert checks the app, the caller's access and
/// the team itself (one statement under the write lock); only when it inserts nothing is
/// the app read, to say why. Without a Gandalf server, the audit event joins the
/// transaction: one commit.
pub fn grant(ctx: &mut Ctx) -> ApiResult<Response> {
    let team = ctx.param("team").to_string();
    let with_git = gandalf::is_configured(ctx);
    let user = ctx.user()?;
    let admin_team = ctx.config.admin_team();
    let target = WriteTarget::new(ctx.param("app"), user, admin_team.as_deref());
    let mut params = target.params();
    params.push(Value::from(team.as_str()));
    let link = format!(
        "INSERT INTO app_teams (app_id, team_id) SELECT a.id, t.id FROM apps a, teams t \
         WHERE {} AND t.name = ?5 RETURNING app_id, team_id",
        WriteTarget::CONDITION
    );
    let (app_id, team_id, members) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let linked = match db.query_opt(&link, &params) {
            Err(e) if e.is_unique_violation() => {
                return Err(ApiError::conflict(
                    "This team already has access to this app",
                ))
            }
            other => other?,
        };
        let Some(linked) = linked else {
            // The app is missing (404) or not the caller's (403), or the team missing.
            target.explain(db)?;
            return Err(ApiError::not_found("Team not found"));
        };
        let (app_id, team_id) = (linked.int(0), linked.int(1));
        if !with_git {
            audit::record_in(
                db,
                &user.email,
                "grant-app-access",
                target.name(),
                json!({"team": team}),
            );
            return Ok((app_id, team_id, Vec::new()));
        }
        Ok((app_id, team_id, teams::member_emails(db, team_id)?))
    })?;
    if !with_git {
        return Ok(Response::empty());
    }
    let app = target.name().to_string();
    if let Err(reason) = gandalf::grant(ctx, std::slice::from_ref(&app), &members) {
        ctx.db()?.write(
            "DELETE FROM app_teams WHERE app_id = ? AND team_id = ?",
            params![app_id, team_id],
        )?;
        return Err(ApiError::bad_gateway(format!(
            "Failed to grant access in the git server: {reason}."
        )));
    }
    audit::record(ctx, "grant-app-access", &app, json!({"team": team}));
    Ok(Response::empty())
}

/// `DELETE /apps/:app/:team`: the checks and the removal in one transaction, so two
/// revokes cannot orphan the app. Without a Gandalf server, the audit event joins it.
pub fn revoke(ctx: &mut Ctx) -> ApiResult<Response> {
    let team = ctx.param("team").to_string();
    let with_git = gandalf::is_configured(ctx);
    let actor = ctx.user()?.email.clone();
    let (app, team_id, users) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let (app, team_id) = app_and_team(db, ctx)?;
        if app.teams.len() == 1 {
            return Err(ApiError::forbidden(
                "You can not revoke the access from this team, because it is the unique team with access to the app, and an app can not be orphaned",
            ));
        }
        let removed = db.query_opt(
            "DELETE FROM app_teams WHERE app_id = ? AND team_id = ? RETURNING team_id",
            params![app.id, team_id],
        )?;
        if removed.is_none() {
            return Err(ApiError::not_found(
                "This team does not have access to this app",
            ));
        }
        if !with_git {
            audit::record_in(db, &actor, "revoke-app-access", &app.name, json!({"team": team}));
            return Ok((app, team_id, Vec::new()));
        }
        // Members who keep no other team on the app lose the repository.
        let users = db
            .query(
                "SELECT u.email FROM team_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.team_id = ?1 AND NOT EXISTS (SELECT 1 FROM app_teams x \
                 JOIN team_members o ON o.team_id = x.team_id \
                 WHERE x.app_id = ?2 AND o.user_id = m.user_id) ORDER BY u.email",
                params![team_id, app.id],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Vec<String>>();
        Ok((app, team_id, users))
    })?;
    if !with_git {
        return Ok(Response::empty());
    }
    if !users.is_empty() {
        if let Err(reason) = gandalf::revoke(ctx, std::slice::from_ref(&app.name), &users) {
            // The app or team may be gone meanwhile; then there is nothing to restore.
            if let Err(undo) = link_team(ctx.db()?, app.id, team_id) {
                eprintln!("restoring team access to app {}: {undo}", app.name);
            }
            return Err(ApiError::bad_gateway(format!(
                "Failed to revoke access in the git server: {reason}"
            )));
        }
    }
    audit::record(ctx, "revoke-app-access", &app.name, json!({"team": team}));
    Ok(Response::empty())
}

fn link_team(db: &Db, app_id: i64, team_id: i64) -> Result<(), DbError> {
    db.write(
        "INSERT INTO app_teams (app_id, team_id) VALUES (?, ?)",
        params![app_id, team_id],
    )
    .map(drop)
}
