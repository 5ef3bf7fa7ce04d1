//! The quota routes (API.md 3.4): reading a user's or an app's quota, and setting its
//! limit. The ledger the other routes reserve against is `apps::quota`.

use crate::apps::quota::{create, unit_item};
use crate::apps::records as apps;
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::request::parse_form;
use crate::runtime::response::Response;
use serde_json::json;

enum Owner {
    User,
    App,
}

fn owner_kind(db: &Db, owner: &str) -> DbResult<Option<Owner>> {
    if db.exists("SELECT 1 FROM users WHERE email = ?", params![owner])? {
        return Ok(Some(Owner::User));
    }
    if db.exists("SELECT 1 FROM apps WHERE name = ?", params![owner])? {
        return Ok(Some(Owner::App));
    }
    Ok(None)
}

/// What the owner currently holds: a user's apps, or an app's unit ids.
fn current_items(db: &Db, owner: &str, kind: &Owner) -> DbResult<Vec<String>> {
    Ok(match kind {
        Owner::User => db
            .query(
                "SELECT name FROM apps WHERE owner = ? ORDER BY name",
                params![owner],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect(),
        Owner::App => db
            .query(
                "SELECT number FROM units WHERE app = ? ORDER BY number",
                params![owner],
            )?
            .iter()
            .map(|r| unit_item(owner, r.int(0)))
            .collect(),
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("Quota not found")
}

/// Admins, the user `owner`, users with access to the app `owner`, and that app's tokens.
fn may_read(ctx: &Ctx, owner: &str) -> ApiResult<bool> {
    Ok(match ctx.caller()? {
        Caller::App(app) => app.app == owner,
        Caller::User(user) if user.is_admin || user.email == owner => true,
        Caller::User(user) => match apps::load(ctx.db()?, owner) {
            Ok(app) => app.accessible_by(user),
            Err(e) if e.status == 404 => false,
            Err(e) => return Err(e),
        },
    })
}

/// `GET /quota/:owner`
pub fn get(ctx: &mut Ctx) -> ApiResult<Response> {
    let owner = ctx.param("owner").to_string();
    if !may_read(ctx, &owner)? {
        return Err(ApiError::forbidden("You do not have access to this quota"));
    }
    let db = ctx.db()?;
    let row = db.query_opt(
        "SELECT \"limit\" FROM quotas WHERE owner = ?",
        params![owner.as_str()],
    )?;
    let (items, limit) = match row {
        Some(row) => {
            let items: Vec<String> = db
                .query(
                    "SELECT item FROM quota_items WHERE owner = ? ORDER BY item",
                    params![owner.as_str()],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect();
            (items, Some(row.int(0)))
        }
        None => {
            let kind = owner_kind(db, &owner)?.ok_or_else(not_found)?;
            (current_items(db, &owner, &kind)?, None)
        }
    };
    let (available, limit) = match limit {
        Some(limit) => ((limit - items.len() as i64).max(0), limit),
        None => (-1, -1),
    };
    Ok(Response::json(
        &json!({"items": items, "available": available, "limit": limit}),
    ))
}

/// `quota=<n>` from the form body, else from the query; an integer in 0..=u32::MAX.
fn requested_limit(ctx: &Ctx) -> ApiResult<i64> {
    let form = parse_form(&ctx.req.body);
    let value = form
        .iter()
        .find(|(k, _)| k == "quota")
        .map(|(_, v)| v.as_str())
        .or_else(|| ctx.req.query_param("quota"))
        .unwrap_or_default();
    let invalid = || ApiError::bad_request("invalid parameter");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse::<u32>().map(i64::from).map_err(|_| invalid())
}

/// `PUT /quota/:owner`
pub fn set(ctx: &mut Ctx) -> ApiResult<Response> {
    let owner = ctx.param("owner").to_string();
    let limit = requested_limit(ctx)?;
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE quotas SET \"limit\" = ? WHERE owner = ?",
            params![limit, owner.as_str()],
        )?;
        if db.changes()? > 0 {
            return Ok(());
        }
        let kind = owner_kind(db, &owner)?.ok_or_else(not_found)?;
        create(db, &owner, limit, &current_items(db, &owner, &kind)?)?;
        if let Owner::App = kind {
            // Units made while the app was unlimited now count, and release on removal.
            db.execute(
                "UPDATE units SET quota_item = app || '-' || number WHERE app = ? AND quota_item IS NULL",
                params![owner.as_str()],
            )?;
        }
        Ok(())
    })?;
    audit::record(ctx, "set-quota", &owner, json!({"limit": limit}));
    Ok(Response::text("Quota changed sucessfully."))
}
