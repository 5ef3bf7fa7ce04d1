//! SSH keys (API.md 3.7 key routes): stored in SQLite and mirrored to Gandalf, named
//! `<email>-<n>` from a per-user counter that never goes back.

use crate::identity::users::{user_exists, user_not_found};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
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

/// `POST /users/keys`
pub fn add_key(ctx: &mut Ctx) -> ApiResult<Response> {
    let content = key_from_body(ctx)?;
    let email = ctx.user()?.email.clone();
    let db = ctx.db()?;
    let duplicate = || ApiError::conflict("User already has this key");
    if db.exists(
        "SELECT 1 FROM user_keys WHERE email = ? AND content = ?",
        params![email.as_str(), content.as_str()],
    )? {
        return Err(duplicate());
    }
    // Numbers come from a counter that is never rolled back, so names are never reused.
    let number = db.transaction(|db| -> ApiResult<i64> {
        db.execute(
            "UPDATE users SET next_key = next_key + 1 WHERE email = ?",
            params![email.as_str()],
        )?;
        Ok(db
            .query_opt(
                "SELECT next_key - 1 FROM users WHERE email = ?",
                params![email.as_str()],
            )?
            .map_or(1, |r| r.int(0)))
    })?;
    let name = format!("{email}-{number}");
    gandalf::add_key(ctx, &email, &name, &content).map_err(|reason| {
        ApiError::bad_gateway(format!("Failed to add key to git server: {reason}"))
    })?;
    let stored = db.execute(
        "INSERT INTO user_keys (email, name, content) VALUES (?, ?, ?)",
        params![email.as_str(), name.as_str(), content.as_str()],
    );
    if let Err(e) = stored {
        if let Err(undo) = gandalf::remove_key(ctx, &email, &name) {
            eprintln!("undo of a key upload failed: {undo}");
        }
        return Err(if e.is_unique_violation() {
            duplicate()
        } else {
            e.into()
        });
    }
    audit::record(ctx, "add-key", &email, json!({ "name": name }));
    Ok(Response::empty())
}

/// `DELETE /users/keys`
pub fn remove_key(ctx: &mut Ctx) -> ApiResult<Response> {
    let content = key_from_body(ctx)?;
    let email = ctx.user()?.email.clone();
    let db = ctx.db()?;
    let name = db
        .query_opt(
            "SELECT name FROM user_keys WHERE email = ? AND content = ?",
            params![email.as_str(), content.as_str()],
        )?
        .map(|r| r.text(0))
        .ok_or_else(|| ApiError::not_found("User does not have this key"))?;
    gandalf::remove_key(ctx, &email, &name).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to remove the key from git server: {reason}"
        ))
    })?;
    db.execute(
        "DELETE FROM user_keys WHERE email = ? AND name = ?",
        params![email.as_str(), name.as_str()],
    )?;
    audit::record(ctx, "remove-key", &email, json!({ "name": name }));
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
    let db = ctx.db()?;
    if user.email != email && !user_exists(db, email)? {
        return Err(user_not_found());
    }
    let keys: BTreeMap<String, String> = db
        .query(
            "SELECT name, content FROM user_keys WHERE email = ? ORDER BY name",
            params![email],
        )?
        .iter()
        .map(|r| (r.text(0), r.text(1)))
        .collect();
    Ok(Response::json(&keys))
}
