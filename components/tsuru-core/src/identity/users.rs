//! User accounts (API.md 3.7): registration with the admin bootstrap, login, logout,
//! password change and reset, and account removal.

use crate::identity::access;
use crate::identity::passwords::{self, is_valid_password, PASSWORD_MESSAGE};
use crate::identity::tokens;
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::router::{Access, TokenUse};
use crate::runtime::secrets::sha256_hex;
use crate::runtime::time::{now_rfc3339, now_unix};
use crate::upstream::gandalf;
use crate::upstream::mailer;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Reset tokens are valid for 24 hours (API.md 3.7).
const RESET_TOKEN_SECONDS: i64 = 86_400;

fn invalid_email() -> ApiError {
    ApiError::bad_request("Invalid email.")
}

pub(crate) fn user_not_found() -> ApiError {
    ApiError::not_found("User not found")
}

pub(crate) fn user_exists(db: &Db, email: &str) -> ApiResult<bool> {
    Ok(db.exists("SELECT 1 FROM users WHERE email = ?", params![email])?)
}

/// The access of `POST /users`: the Authorization header is read only by the gate.
pub const REGISTRATION: Access = Access {
    token: TokenUse::Optional,
    check: registration_gate,
};

/// The registration gate of `POST /users` (API.md 3.7), run at the auth step: with
/// registration off and a user existing, only an admin may register others.
fn registration_gate(ctx: &mut Ctx) -> ApiResult<()> {
    if ctx.config.user_registration()? {
        return Ok(());
    }
    if !ctx.db()?.exists("SELECT 1 FROM users LIMIT 1", &[])? {
        return Ok(());
    }
    let disabled = || ApiError::forbidden("User registration is disabled.");
    if ctx
        .req
        .header("authorization")
        .is_none_or(|h| h.trim().is_empty())
    {
        return Err(disabled());
    }
    match access::authenticate(ctx)? {
        Caller::User(user) if user.is_admin => {
            ctx.caller = Some(Caller::User(user));
            Ok(())
        }
        _ => Err(disabled()),
    }
}

#[derive(Deserialize)]
struct Registration {
    email: Option<String>,
    password: Option<String>,
    /// Objects with a `content` string; other keys (a `name`) are ignored.
    keys: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

/// `POST /users`
pub fn register(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: Registration = ctx.json_object("Invalid JSON in request body.")?;
    let mut keys = Vec::new();
    for key in body.keys.unwrap_or_default() {
        match key.get("content") {
            Some(serde_json::Value::String(content)) if !content.trim().is_empty() => {
                keys.push(content.clone())
            }
            _ => return Err(ApiError::invalid_json()),
        }
    }
    let email = body.email.unwrap_or_default();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    let password = body.password.unwrap_or_default();
    if !is_valid_password(&password) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    let already = || ApiError::conflict("This email is already registered");
    let db = ctx.db()?;
    if user_exists(db, &email)? {
        return Err(already());
    }
    // Hash before taking the write lock: it is the slow part.
    let hash = passwords::hash(&password)?;
    let quota = ctx.config.quota_apps_per_user()?;
    let admin_team = ctx.config.admin_team();
    let admin_email = ctx.config.admin_email();
    let now = now_rfc3339();
    let named_keys: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, content)| (format!("{email}-{}", i + 1), content.clone()))
        .collect();
    let created_admin_team = db.transaction(|db| -> ApiResult<Option<String>> {
        let first_user = !db.exists("SELECT 1 FROM users LIMIT 1", &[])?;
        let inserted = db.execute(
            "INSERT INTO users (email, password_hash, token_epoch, next_key, created_at) VALUES (?, ?, 0, ?, ?)",
            params![email.as_str(), hash.as_str(), named_keys.len() as i64 + 1, now.as_str()],
        );
        match inserted {
            Err(e) if e.is_unique_violation() => return Err(already()),
            other => other?,
        }
        if let Some(limit) = quota {
            db.execute(
                "INSERT OR REPLACE INTO quotas (owner, \"limit\") VALUES (?, ?)",
                params![email.as_str(), limit],
            )?;
        }
        for (name, content) in &named_keys {
            let inserted = db.execute(
                "INSERT INTO user_keys (email, name, content) VALUES (?, ?, ?)",
                params![email.as_str(), name.as_str(), content.as_str()],
            );
            match inserted {
                // The same key twice in one registration is kept once.
                Err(e) if e.is_unique_violation() => {}
                other => other?,
            }
        }
        let Some(team) = &admin_team else {
            return Ok(None);
        };
        let qualifies = match &admin_email {
            Some(admin) => *admin == email,
            None => first_user,
        };
        if !qualifies || db.exists("SELECT 1 FROM teams WHERE name = ?", params![team.as_str()])? {
            return Ok(None);
        }
        db.execute(
            "INSERT INTO teams (name, created_at) VALUES (?, ?)",
            params![team.as_str(), now.as_str()],
        )?;
        db.execute(
            "INSERT INTO team_members (team, email) VALUES (?, ?)",
            params![team.as_str(), email.as_str()],
        )?;
        Ok(Some(team.clone()))
    })?;
    if let Err(reason) = gandalf::create_user(ctx, &email, &named_keys) {
        db.transaction(|db| -> ApiResult<()> {
            delete_user_rows(db, &email)?;
            if let Some(team) = &created_admin_team {
                db.execute("DELETE FROM teams WHERE name = ?", params![team.as_str()])?;
            }
            Ok(())
        })?;
        return Err(ApiError::bad_gateway(format!(
            "Failed to create user in the git server: {reason}"
        )));
    }
    audit::record_as(ctx, &email, "create-user", &email, json!({}));
    Ok(Response::empty())
}

/// Deletes a user's own rows: memberships, keys, quota and the account.
fn delete_user_rows(db: &Db, email: &str) -> ApiResult<()> {
    for sql in [
        "DELETE FROM team_members WHERE email = ?",
        "DELETE FROM user_keys WHERE email = ?",
        "DELETE FROM quota_items WHERE owner = ?",
        "DELETE FROM quotas WHERE owner = ?",
        "DELETE FROM users WHERE email = ?",
    ] {
        db.execute(sql, params![email])?;
    }
    Ok(())
}

/// `POST /users/:email/tokens`
pub fn login(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: HashMap<String, String> = ctx.json_body("Invalid JSON")?;
    let Some(given) = body.get("password") else {
        return Err(ApiError::bad_request(
            "You must provide a password to login",
        ));
    };
    let email = ctx.param("email").to_string();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    let db = ctx.db()?;
    let row = db
        .query_opt(
            "SELECT password_hash, token_epoch FROM users WHERE email = ?",
            params![email.as_str()],
        )?
        .ok_or_else(user_not_found)?;
    if !is_valid_password(given) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    if !passwords::verify(given, &row.text(0)) {
        return Err(ApiError::unauthorized(
            "Authentication failed, wrong password.",
        ));
    }
    let days = ctx.config.token_expire_days()?;
    let token = tokens::issue_user_token(ctx.kv()?, &email, row.int(1), days)?;
    audit::record_as(ctx, &email, "login", &email, json!({}));
    Ok(Response::json(&json!({ "token": token })))
}

/// `DELETE /users/tokens`: revokes the presented token.
pub fn logout(ctx: &mut Ctx) -> ApiResult<Response> {
    let token = access::bearer_token(ctx.req.header("authorization"))?;
    tokens::delete_token(ctx.kv()?, token)?;
    Ok(Response::empty())
}

#[derive(Deserialize)]
struct PasswordChange {
    old: Option<String>,
    new: Option<String>,
}

/// `PUT /users/password`
pub fn change_password(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: PasswordChange = ctx.json_object("Invalid JSON.")?;
    let (old, new) = match (body.old, body.new) {
        (Some(old), Some(new)) if !old.is_empty() && !new.is_empty() => (old, new),
        _ => {
            return Err(ApiError::bad_request(
                "Both the old and the new passwords are required.",
            ))
        }
    };
    let email = ctx.user()?.email.clone();
    let db = ctx.db()?;
    let current = db
        .query_opt(
            "SELECT password_hash FROM users WHERE email = ?",
            params![email.as_str()],
        )?
        .ok_or_else(ApiError::invalid_token)?;
    if !is_valid_password(&old) || !passwords::verify(&old, &current.text(0)) {
        return Err(ApiError::forbidden(
            "The given password didn't match the user's current password.",
        ));
    }
    if !is_valid_password(&new) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    let hash = passwords::hash(&new)?;
    let epoch = db.transaction(|db| -> ApiResult<i64> {
        db.execute(
            "UPDATE users SET password_hash = ?, token_epoch = token_epoch + 1 WHERE email = ?",
            params![hash.as_str(), email.as_str()],
        )?;
        Ok(db
            .query_opt(
                "SELECT token_epoch FROM users WHERE email = ?",
                params![email.as_str()],
            )?
            .map_or(0, |r| r.int(0)))
    })?;
    // Every other token is revoked by the new epoch; the caller's own token is carried
    // over so the caller stays logged in (API.md 1.3, 4.2).
    let presented = access::bearer_token(ctx.req.header("authorization"))?.to_string();
    let kv = ctx.kv()?;
    tokens::carry_token_to_epoch(kv, &presented, epoch)?;
    tokens::delete_user_token_records(kv, &email, Some(&sha256_hex(presented.as_bytes())))?;
    audit::record(ctx, "change-password", &email, json!({}));
    Ok(Response::empty())
}

#[derive(Serialize, Deserialize)]
struct ResetRecord {
    email: String,
    creation: i64,
}

fn reset_key(token: &str) -> String {
    format!("reset:{}", sha256_hex(token.as_bytes()))
}

/// `POST /users/:email/password[?token=]`: mails a reset token, or with a valid token
/// mails a new password and only then stores it (API.md 3.7, 7.12).
pub fn reset_password(ctx: &mut Ctx) -> ApiResult<Response> {
    let email = ctx.param("email").to_string();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    if !user_exists(ctx.db()?, &email)? {
        return Err(user_not_found());
    }
    let mail_failed =
        |reason: String| ApiError::bad_gateway(format!("Failed to send e-mail: {reason}"));
    let kv = ctx.kv()?;
    let Some(token) = ctx.req.query_param("token").map(str::to_string) else {
        let token = crate::runtime::secrets::new_token()?;
        kv.set_json(
            &reset_key(&token),
            &ResetRecord {
                email: email.clone(),
                creation: now_unix(),
            },
        )?;
        let body = format!(
            "Someone, hopefully you, asked to reset your tsuru password.\n\nUse this token to reset it: {token}\n\nIt is valid for 24 hours."
        );
        if let Err(reason) = mailer::send(ctx, &email, "[Tsuru] Password reset process", &body) {
            kv.delete(&reset_key(&token))?;
            return Err(mail_failed(reason));
        }
        audit::record_as(ctx, &email, "reset-password-gen-token", &email, json!({}));
        return Ok(Response::empty());
    };
    let valid = kv
        .get_json::<ResetRecord>(&reset_key(&token))?
        .is_some_and(|r| r.email == email && now_unix() - r.creation < RESET_TOKEN_SECONDS);
    if !valid {
        return Err(ApiError::forbidden("Invalid token"));
    }
    let new_password = passwords::generate()?;
    let body = format!("Your tsuru password has been reset. Your new password is: {new_password}");
    mailer::send(ctx, &email, "[Tsuru] Password successfuly redefined", &body)
        .map_err(mail_failed)?;
    let hash = passwords::hash(&new_password)?;
    ctx.db()?.execute(
        "UPDATE users SET password_hash = ?, token_epoch = token_epoch + 1 WHERE email = ?",
        params![hash.as_str(), email.as_str()],
    )?;
    kv.delete(&reset_key(&token))?;
    tokens::delete_user_token_records(kv, &email, None)?;
    audit::record_as(ctx, &email, "reset-password", &email, json!({}));
    Ok(Response::empty())
}

/// `DELETE /users`: removes the caller's account (API.md 3.7).
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?.clone();
    let db = ctx.db()?;
    for team in &user.teams {
        let members = db
            .query_opt(
                "SELECT COUNT(*) FROM team_members WHERE team = ?",
                params![team.as_str()],
            )?
            .map_or(0, |r| r.int(0));
        if members <= 1 {
            return Err(ApiError::forbidden(format!(
                "This user is the last member of the team \"{team}\", so it cannot be removed.\n\nPlease remove the team, then remove the user."
            )));
        }
    }
    let apps: Vec<String> = db
        .query(
            "SELECT DISTINCT at.app FROM app_teams at JOIN team_members m ON m.team = at.team \
             WHERE m.email = ? ORDER BY at.app",
            params![user.email.as_str()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect();
    let users = vec![user.email.clone()];
    if !apps.is_empty() {
        gandalf::revoke(ctx, &apps, &users).map_err(|reason| {
            ApiError::bad_gateway(format!(
                "Failed to revoke acess from git repositories: {reason}"
            ))
        })?;
    }
    if let Err(reason) = gandalf::remove_user(ctx, &user.email) {
        if !apps.is_empty() {
            if let Err(undo) = gandalf::grant(ctx, &apps, &users) {
                eprintln!("undo of repository revoke for a user failed: {undo}");
            }
        }
        return Err(ApiError::bad_gateway(format!(
            "Failed to remove the user from the git server: {reason}"
        )));
    }
    db.transaction(|db| delete_user_rows(db, &user.email))?;
    tokens::delete_user_token_records(ctx.kv()?, &user.email, None)?;
    audit::record(ctx, "remove-user", &user.email, json!({}));
    Ok(Response::empty())
}

/// `^([^@\s]+)@((?:[-a-z0-9]+\.)+[a-z]{2,})$` (API.md 3.7).
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.chars().any(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    !rest.is_empty()
        && rest.iter().all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.com", "x.y+z@mail.example.org", "a_b@x-y.co"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@B.com",
            "a b@c.com",
            "@b.com",
            "a@b.c",
            "a@.com",
            "a@b.c0m",
            "a@b@c.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
