//! An app's custom domain (API.md 3.1 cname routes).

use crate::apps::records::WriteTarget;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::Value;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use serde_json::json;

/// `^[a-zA-Z0-9][\w.-]+$`, at most 253 characters.
fn is_cname(cname: &str) -> bool {
    let bytes = cname.as_bytes();
    (2..=253).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `POST /apps/:app/cname`
pub fn set_cname(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: serde_json::Map<String, serde_json::Value> =
        ctx.json_object("Invalid JSON in request body.")?;
    let cname = match body.get("cname") {
        None => return Err(ApiError::bad_request("You must provide the cname.")),
        Some(serde_json::Value::String(cname)) => cname.clone(),
        Some(_) => return Err(ApiError::invalid_json()),
    };
    store(ctx, &cname, "set-cname")
}

/// `DELETE /apps/:app/cname`
pub fn unset_cname(ctx: &mut Ctx) -> ApiResult<Response> {
    store(ctx, "", "unset-cname")
}

/// Stores the app's cname (`""` clears it). The update itself checks the app and the
/// caller's access, and opens the transaction (one statement under the write lock
/// instead of two); only when it changes nothing is the app read, to say why.
fn store(ctx: &Ctx, cname: &str, action: &str) -> ApiResult<Response> {
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    let name = ctx.param("app");
    let valid = cname.is_empty() || is_cname(cname);
    let target = WriteTarget::new(name, user, admin_team.as_deref());
    let update = format!(
        "UPDATE apps AS a SET cname = ?5 WHERE {} AND ?6 RETURNING id",
        WriteTarget::CONDITION
    );
    let mut params = target.params();
    params.extend([Value::from(cname), Value::from(valid)]);
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let updated = match db.query(&update, &params) {
            Err(e) if e.is_unique_violation() => {
                return Err(ApiError::conflict(format!(
                    "The cname \"{cname}\" is already in use."
                )))
            }
            other => other?,
        };
        if updated.is_empty() {
            // The app is missing (404) or not the caller's (403), or the cname invalid.
            target.explain(db)?;
            return Err(ApiError::bad_request("Invalid cname"));
        }
        let extra = if cname.is_empty() {
            json!({})
        } else {
            json!({ "cname": cname })
        };
        audit::record_in(db, &user.email, action, name, extra);
        Ok(())
    })?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnames() {
        for ok in ["www.example.com", "a_b", "9x", &"a".repeat(253)] {
            assert!(is_cname(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            ".example.com",
            "_x",
            "a b",
            "é.com",
            &"a".repeat(254),
        ] {
            assert!(!is_cname(bad), "{bad}");
        }
    }
}
