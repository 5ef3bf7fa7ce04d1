//! Platforms (API.md 3.6): the names apps may be created with.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use serde::Deserialize;
use serde_json::json;

/// `^[a-z][a-z0-9_.-]{0,62}$`
fn is_platform_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..].iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// `GET /platforms`
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let platforms: Vec<_> = ctx
        .db()?
        .query("SELECT name FROM platforms ORDER BY name", &[])?
        .iter()
        .map(|r| json!({"Name": r.text(0)}))
        .collect();
    audit::record(ctx, "platform-list", "", json!({}));
    Ok(Response::json(&platforms))
}

#[derive(Deserialize)]
struct NewPlatform {
    name: Option<String>,
}

/// `POST /platforms`
pub fn add(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: NewPlatform = ctx.json_object("Invalid JSON in request body.")?;
    let name = body.name.unwrap_or_default();
    if !is_platform_name(&name) {
        return Err(ApiError::bad_request("Invalid platform name"));
    }
    let actor = audit::actor(ctx.caller.as_ref());
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let inserted = db.execute(
            "INSERT INTO platforms (name) VALUES (?)",
            params![name.as_str()],
        );
        match inserted {
            Err(e) if e.is_unique_violation() => {
                return Err(ApiError::conflict("Platform already exists"))
            }
            other => other?,
        }
        audit::record_in(db, &actor, "create-platform", &name, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// `DELETE /platforms/:platform`
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("platform").to_string();
    let actor = audit::actor(ctx.caller.as_ref());
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        if !db.exists(
            "SELECT 1 FROM platforms WHERE name = ?",
            params![name.as_str()],
        )? {
            return Err(ApiError::not_found("Platform not found"));
        }
        if db.exists(
            "SELECT 1 FROM apps WHERE platform = ? LIMIT 1",
            params![name.as_str()],
        )? {
            return Err(ApiError::conflict(
                "This platform is in use by at least one app and cannot be removed.",
            ));
        }
        db.execute(
            "DELETE FROM platforms WHERE name = ?",
            params![name.as_str()],
        )?;
        audit::record_in(db, &actor, "remove-platform", &name, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names() {
        for ok in ["go", "ruby20", "a.b_c-d", "x"] {
            assert!(is_platform_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Go",
            "1go",
            "_go",
            "go lang",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(!is_platform_name(bad), "{bad}");
        }
    }
}
