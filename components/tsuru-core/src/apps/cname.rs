//! An app's custom domain (API.md 3.1 cname routes).

use crate::apps::records::load_for_user;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbError};
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
    let app = load_for_user(ctx, ctx.param("app"))?;
    if !cname.is_empty() && !is_cname(&cname) {
        return Err(ApiError::bad_request("Invalid cname"));
    }
    let in_use = || ApiError::conflict(format!("The cname \"{cname}\" is already in use."));
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let taken = !cname.is_empty()
            && db.exists(
                "SELECT 1 FROM apps WHERE cname = ? AND name <> ?",
                params![cname.as_str(), app.name.as_str()],
            )?;
        if taken {
            return Err(in_use());
        }
        store_cname(db, &app.name, &cname)?;
        Ok(())
    })?;
    audit::record(ctx, "set-cname", &app.name, json!({"cname": cname}));
    Ok(Response::empty())
}

/// `DELETE /apps/:app/cname`
pub fn unset_cname(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    store_cname(ctx.db()?, &app.name, "")?;
    audit::record(ctx, "unset-cname", &app.name, json!({}));
    Ok(Response::empty())
}

fn store_cname(db: &Db, app: &str, cname: &str) -> Result<(), DbError> {
    db.execute(
        "UPDATE apps SET cname = ? WHERE name = ?",
        params![cname, app],
    )
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
