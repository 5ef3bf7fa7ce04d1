//! User accounts (API.md 3.7): registration with the admin bootstrap, password change,
//! and account removal. A user is its row's id, never reused: removing an account
//! removes its keys, memberships and quota with it (foreign keys), and registering the
//! email again makes a new account that no old token, key or reset token reaches (8.2).

use crate::identity::access;
use crate::identity::keys;
use crate::identity::passwords::{self, is_valid_password, PASSWORD_MESSAGE};
use crate::identity::tokens;
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::router::{Access, TokenUse};
use crate::runtime::secrets::sha256_hex;
use crate::runtime::time::now_rfc3339;
use crate::upstream::gandalf;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn invalid_email() -> ApiError {
    ApiError::bad_request("Invalid email.")
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
    let any_user = ctx.db()?.query_first(
        "SELECT v.user_version, EXISTS (SELECT 1 FROM users) FROM pragma_user_version v",
        &[],
    )?;
    if !any_user.first().is_some_and(|r| r.bool(1)) {
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

/// What one registration writes.
struct NewUser<'a> {
    email: &'a str,
    hash: String,
    keys: Vec<(String, String)>,
    quota: Option<i64>,
    admin_team: Option<String>,
    admin_email: Option<String>,
}

/// `POST /users`
pub fn register(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: Registration = ctx.json_object("Invalid JSON in request body.")?;
    let listed = body.keys.unwrap_or_default();
    let (mut keys, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for key in &listed {
        match key.get("content") {
            Some(serde_json::Value::String(content)) if !content.trim().is_empty() => {
                // The same key twice in one registration is kept once.
                if seen.insert(content.as_str()) {
                    keys.push(content.as_str())
                }
            }
            _ => return Err(ApiError::invalid_json()),
        }
    }
    if keys.iter().any(|k| k.len() > keys::MAX_KEY_BYTES) {
        return Err(keys::key_too_long());
    }
    if keys.len() > keys::MAX_KEYS as usize {
        return Err(keys::too_many_keys());
    }
    let email = body.email.unwrap_or_default();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    let password = body.password.unwrap_or_default();
    if !is_valid_password(&password) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    let db = ctx.db()?;
    // Refused before hashing, the slow part; the transaction checks again.
    let taken = db.query_first(
        "SELECT v.user_version, u.id FROM pragma_user_version v LEFT JOIN users u ON u.email = ?",
        params![email.as_str()],
    )?;
    if taken.first().and_then(|r| r.opt_int(1)).is_some() {
        return Err(already_registered());
    }
    let named_keys: Vec<(String, String)> = keys
        .into_iter()
        .enumerate()
        .map(|(i, content)| (format!("{email}-{}", i + 1), content.to_string()))
        .collect();
    let user = NewUser {
        email: &email,
        hash: passwords::hash(&password)?,
        keys: named_keys,
        quota: ctx.config.quota_apps_per_user()?,
        admin_team: ctx.config.admin_team(),
        admin_email: ctx.config.admin_email(),
    };
    let with_git = gandalf::is_configured(ctx);
    let (id, admin_team_id) = db.transaction(|db| -> ApiResult<_> {
        let created = insert_user(db, &user)?;
        if !with_git {
            // No git server to call: the event commits with the account.
            audit::record_in(db, &email, "create-user", &email, json!({}));
        }
        Ok(created)
    })?;
    if !with_git {
        return Ok(Response::empty());
    }
    if let Err(reason) = gandalf::create_user(ctx, &email, &user.keys) {
        ctx.db()?.transaction(|db| -> ApiResult<()> {
            db.execute("DELETE FROM users WHERE id = ?", params![id])?;
            if let Some(team) = admin_team_id {
                db.execute("DELETE FROM teams WHERE id = ?", params![team])?;
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

fn already_registered() -> ApiError {
    ApiError::conflict("This email is already registered")
}

/// Side effect 1 of `POST /users`: the user, their quota and keys, and the admin team
/// when this registration bootstraps it (API.md 1.3). Returns the user's id and the id of
/// the admin team it created.
fn insert_user(db: &Db, user: &NewUser) -> ApiResult<(i64, Option<i64>)> {
    let first_user = !db.exists("SELECT 1 FROM users LIMIT 1", &[])?;
    let inserted = db.query(
        "INSERT INTO users (email, password_hash, token_epoch, next_key, created_at) \
         VALUES (?, ?, 0, ?, ?) RETURNING id",
        params![
            user.email,
            user.hash.as_str(),
            user.keys.len() as i64 + 1,
            now_rfc3339()
        ],
    );
    let id = match inserted {
        Err(e) if e.is_unique_violation() => return Err(already_registered()),
        other => other?.first().map_or(0, |r| r.int(0)),
    };
    if let Some(limit) = user.quota {
        db.execute(
            "INSERT INTO quotas (user_id, \"limit\") VALUES (?, ?)",
            params![id, limit],
        )?;
    }
    // A few statements however many keys the body holds: the write lock is held for a
    // bounded number of statements (the registration is unauthenticated).
    let keys: Vec<Value> = user
        .keys
        .iter()
        .flat_map(|(name, content)| [Value::from(id), Value::from(name), Value::from(content)])
        .collect();
    db.insert_rows(
        "INSERT INTO user_keys (user_id, name, content) VALUES",
        3,
        &keys,
        "",
    )?;
    let Some(team) = &user.admin_team else {
        return Ok((id, None));
    };
    let qualifies = match &user.admin_email {
        Some(admin) => admin == user.email,
        None => first_user,
    };
    if !qualifies || db.exists("SELECT 1 FROM teams WHERE name = ?", params![team.as_str()])? {
        return Ok((id, None));
    }
    let team_id = db
        .query(
            "INSERT INTO teams (name, created_at) VALUES (?, ?) RETURNING id",
            params![team.as_str(), now_rfc3339()],
        )?
        .first()
        .map_or(0, |r| r.int(0));
    db.execute(
        "INSERT INTO team_members (team_id, user_id) VALUES (?, ?)",
        params![team_id, id],
    )?;
    Ok((id, Some(team_id)))
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
    let user_id = ctx.user()?.id;
    let db = ctx.db()?;
    let current = db
        .query_opt(
            "SELECT password_hash FROM users WHERE id = ?",
            params![user_id],
        )?
        .ok_or_else(ApiError::invalid_token)?;
    let mismatch =
        || ApiError::forbidden("The given password didn't match the user's current password.");
    if !is_valid_password(&old) || !passwords::verify(&old, &current.text(0)) {
        return Err(mismatch());
    }
    if !is_valid_password(&new) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    let hash = passwords::hash(&new)?;
    let email = ctx.user()?.email.clone();
    let presented = access::bearer_token(ctx.req.header("authorization"))?.to_string();
    let kept = sha256_hex(presented.as_bytes());
    let (epoch, revoked) = db.transaction(|db| -> ApiResult<(i64, tokens::Unindexed)> {
        // Only over the hash the old password was checked against: a change made
        // meanwhile wins, and this one is refused as a wrong old password.
        let changed = db.query_opt(
            "UPDATE users SET password_hash = ?, token_epoch = token_epoch + 1 \
             WHERE id = ? AND password_hash = ? RETURNING token_epoch",
            params![hash.as_str(), user_id, current.text(0)],
        )?;
        let Some(changed) = changed else {
            return match db.exists("SELECT 1 FROM users WHERE id = ?", params![user_id])? {
                true => Err(mismatch()),
                false => Err(ApiError::invalid_token()),
            };
        };
        let revoked = tokens::unindex_user_tokens(db, user_id, Some(&kept))?;
        audit::record_in(db, &email, "change-password", &email, json!({}));
        Ok((changed.int(0), revoked))
    })?;
    // Every other token is revoked by the new epoch; the caller's own token is carried
    // over so the caller stays logged in (API.md 1.3, 4.2).
    let kv = ctx.kv()?;
    tokens::carry_token_to_epoch(kv, &presented, epoch)?;
    tokens::delete_user_token_records(kv, user_id, &revoked, Some(&kept))?;
    Ok(Response::empty())
}

const LAST_MEMBER_OF: &str =
    "SELECT t.name FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = ?1 \
     AND NOT EXISTS (SELECT 1 FROM team_members o WHERE o.team_id = m.team_id AND o.user_id <> ?1) \
     ORDER BY t.name LIMIT 1";

fn last_member_of(db: &Db, user_id: i64) -> ApiResult<()> {
    if let Some(team) = db.query_opt(LAST_MEMBER_OF, params![user_id])? {
        return Err(ApiError::forbidden(format!(
            "This user is the last member of the team \"{}\", so it cannot be removed.\n\nPlease remove the team, then remove the user.",
            team.text(0)
        )));
    }
    Ok(())
}

/// `DELETE /users`: removes the caller's account (API.md 3.7).
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?.clone();
    let db = ctx.db()?;
    last_member_of(db, user.id)?;
    let apps: Vec<String> = db
        .query(
            "SELECT DISTINCT a.name FROM team_members m JOIN app_teams x ON x.team_id = m.team_id \
             JOIN apps a ON a.id = x.app_id WHERE m.user_id = ? ORDER BY a.name",
            params![user.id],
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
    let restore_git_access = || {
        if !apps.is_empty() {
            if let Err(undo) = gandalf::grant(ctx, &apps, &users) {
                eprintln!("undo of repository revoke for a user failed: {undo}");
            }
        }
    };
    if let Err(reason) = gandalf::remove_user(ctx, &user.email) {
        restore_git_access();
        return Err(ApiError::bad_gateway(format!(
            "Failed to remove the user from the git server: {reason}"
        )));
    }
    // The last-member check holds until the row is gone: a teammate leaving meanwhile
    // cannot orphan a team. Keys, memberships and quota go with the row.
    let removed = ctx.db()?.transaction(|db| -> ApiResult<tokens::Unindexed> {
        last_member_of(db, user.id)?;
        let revoked = tokens::unindex_user_tokens(db, user.id, None)?;
        db.execute("DELETE FROM users WHERE id = ?", params![user.id])?;
        audit::record_in(db, &user.email, "remove-user", &user.email, json!({}));
        Ok(revoked)
    });
    let revoked = match removed {
        Ok(revoked) => revoked,
        Err(e) => {
            let keys = user_keys(ctx.db()?, user.id).unwrap_or_default();
            if let Err(undo) = gandalf::create_user(ctx, &user.email, &keys) {
                eprintln!("undo of a git server user removal failed: {undo}");
            }
            restore_git_access();
            return Err(e);
        }
    };
    tokens::delete_user_token_records(ctx.kv()?, user.id, &revoked, None)?;
    Ok(Response::empty())
}

/// A user's SSH keys, name and content, by name.
pub(crate) fn user_keys(db: &Db, user_id: i64) -> ApiResult<Vec<(String, String)>> {
    Ok(db
        .query(
            "SELECT name, content FROM user_keys WHERE user_id = ? ORDER BY name",
            params![user_id],
        )?
        .iter()
        .map(|r| (r.text(0), r.text(1)))
        .collect())
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
