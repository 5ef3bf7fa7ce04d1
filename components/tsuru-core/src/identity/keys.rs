//! SSH keys (API.md 3.7 key routes): stored in SQLite and mirrored to Gandalf, named
//! `<email>-<n>` from a per-user counter that never goes back.

use crate::identity::access::user_not_found;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::gandalf;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct KeyBody {
    key: Option<String>,
}

fn key_from_body(ctx: &Ctx) -> ApiResult<String> {
    let body: KeyBody = ctx.json_object("Invalid JSON")?;
    match body.key {
        Some(key) if !key.trim().is_empty() => Ok(key),
        _ => Err(ApiError::bad_request("Missing key")),
    }
}

fn duplicate() -> ApiError {
    ApiError::conflict("User already has this key")
}

/// The most keys a user holds, and the longest key in bytes (OpenSSH's own bound on a
/// public key, `SSH_MAX_PUBKEY_BYTES`): without them one user could grow the shared
/// database by a megabyte a request, without end, and send it all to the git server.
pub const MAX_KEYS: i64 = 100;
pub const MAX_KEY_BYTES: usize = 16 * 1024;

pub fn key_too_long() -> ApiError {
    ApiError::bad_request(format!(
        "Key too long: a key may be at most {MAX_KEY_BYTES} bytes."
    ))
}

pub fn too_many_keys() -> ApiError {
    ApiError::bad_request(format!(
        "Too many keys: a user may hold at most {MAX_KEYS} keys."
    ))
}

/// `POST /users/keys`
pub fn add_key(ctx: &mut Ctx) -> ApiResult<Response> {
    let content = key_from_body(ctx)?;
    if content.len() > MAX_KEY_BYTES {
        return Err(key_too_long());
    }
    let user = ctx.user()?;
    let (user_id, email) = (user.id, user.email.clone());
    let db = ctx.db()?;
    // Refused before a key number is spent or the git server hears of it; the insert
    // checks the count again, under the write lock.
    let held = db.query(
        "SELECT EXISTS (SELECT 1 FROM user_keys WHERE user_id = ?1 AND content = ?2), \
         (SELECT COUNT(*) FROM user_keys WHERE user_id = ?1)",
        params![user_id, content.as_str()],
    )?;
    match held.first().map(|r| (r.bool(0), r.int(1))) {
        Some((true, _)) => return Err(duplicate()),
        Some((false, count)) if count >= MAX_KEYS => return Err(too_many_keys()),
        _ => {}
    }
    if !gandalf::is_configured(ctx) {
        // No git server to tell the name first: the number and the key commit together.
        db.transaction(|db| {
            let name = next_key_name(db, user_id, &email)?;
            store_key(db, user_id, &email, &name, &content)
        })?;
        return Ok(Response::empty());
    }
    // The number is committed before the git server hears the name, so that a name
    // is never reused.
    let name = next_key_name(db, user_id, &email)?;
    gandalf::add_key(ctx, &email, &name, &content).map_err(|reason| {
        ApiError::bad_gateway(format!("Failed to add key to git server: {reason}"))
    })?;
    let stored = ctx
        .db()?
        .transaction(|db| store_key(db, user_id, &email, &name, &content));
    if let Err(e) = stored {
        if let Err(undo) = gandalf::remove_key(ctx, &email, &name) {
            eprintln!("undo of a key upload failed: {undo}");
        }
        return Err(e);
    }
    Ok(Response::empty())
}

/// The next key name of the user, `<email>-<n>`, from a counter that never goes back.
fn next_key_name(db: &Db, user_id: i64, email: &str) -> ApiResult<String> {
    let number = db
        .write_opt(
            "UPDATE users SET next_key = next_key + 1 WHERE id = ? RETURNING next_key - 1",
            params![user_id],
        )?
        .ok_or_else(ApiError::invalid_token)?
        .int(0);
    Ok(format!("{email}-{number}"))
}

/// Stores the key and its audit event, unless the user already holds [`MAX_KEYS`].
fn store_key(db: &Db, user_id: i64, email: &str, name: &str, content: &str) -> ApiResult<()> {
    let stored = db
        .query(
            "INSERT INTO user_keys (user_id, name, content) SELECT ?1, ?2, ?3 \
             WHERE (SELECT COUNT(*) FROM user_keys WHERE user_id = ?1) < ?4 RETURNING 1",
            params![user_id, name, content, MAX_KEYS],
        )
        .map_err(|e| {
            if e.is_unique_violation() {
                duplicate()
            } else if e.is_foreign_key_violation() {
                // The account was removed meanwhile.
                ApiError::invalid_token()
            } else {
                e.into()
            }
        })?;
    if stored.is_empty() {
        return Err(too_many_keys());
    }
    audit::record_in(db, email, "add-key", email, json!({ "name": name }));
    Ok(())
}

/// `DELETE /users/keys`
pub fn remove_key(ctx: &mut Ctx) -> ApiResult<Response> {
    let content = key_from_body(ctx)?;
    let user = ctx.user()?;
    let (user_id, email) = (user.id, user.email.clone());
    let name = ctx
        .db()?
        .query_opt(
            "SELECT name FROM user_keys WHERE user_id = ? AND content = ?",
            params![user_id, content.as_str()],
        )?
        .map(|r| r.text(0))
        .ok_or_else(|| ApiError::not_found("User does not have this key"))?;
    gandalf::remove_key(ctx, &email, &name).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to remove the key from git server: {reason}"
        ))
    })?;
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute(
            "DELETE FROM user_keys WHERE user_id = ? AND name = ?",
            params![user_id, name.as_str()],
        )?;
        audit::record_in(db, &email, "remove-key", &email, json!({ "name": name }));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// `GET /users/:email/keys`
pub fn list_keys(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let email = ctx.param("email");
    if user.email != email && !user.is_admin {
        return Err(ApiError::forbidden(
            "You do not have access to this user's keys",
        ));
    }
    let rows = ctx.db()?.query(
        "SELECT u.id, k.name, k.content FROM users u LEFT JOIN user_keys k ON k.user_id = u.id \
         WHERE u.email = ? ORDER BY k.name",
        params![email],
    )?;
    if rows.is_empty() {
        return Err(user_not_found());
    }
    let keys: BTreeMap<String, String> = rows
        .iter()
        .filter_map(|r| Some((r.opt_text(1)?, r.text(2))))
        .collect();
    Ok(Response::json(&keys))
}
