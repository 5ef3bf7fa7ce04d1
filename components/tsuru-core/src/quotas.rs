//! Quotas (API.md 3.4): a limit and the items counted against it. Owners are user emails
//! (items are app names) or app names (items are `<app>-<n>` unit ids). No quota row
//! means unlimited. Reservations happen inside the caller's transaction, so concurrent
//! requests never overbook.

use crate::apps;
use crate::audit;
use crate::auth::Caller;
use crate::context::Ctx;
use crate::db::{Db, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::{parse_form, Response};
use crate::params;
use serde_json::json;

/// Room left in `owner`'s quota; `None` when the owner has no quota (unlimited).
pub fn available(db: &Db, owner: &str) -> DbResult<Option<i64>> {
    let row = db.query_opt(
        "SELECT q.\"limit\", (SELECT COUNT(*) FROM quota_items i WHERE i.owner = q.owner) \
         FROM quotas q WHERE q.owner = ?",
        params![owner],
    )?;
    Ok(row.map(|r| (r.int(0) - r.int(1)).max(0)))
}

pub fn add_items(db: &Db, owner: &str, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "INSERT OR IGNORE INTO quota_items (owner, item) VALUES (?, ?)",
            params![owner, item.as_str()],
        )?;
    }
    Ok(())
}

pub fn release(db: &Db, owner: &str, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "DELETE FROM quota_items WHERE owner = ? AND item = ?",
            params![owner, item.as_str()],
        )?;
    }
    Ok(())
}

/// Creates `owner`'s quota with `items` already counted.
pub fn create(db: &Db, owner: &str, limit: i64, items: &[String]) -> DbResult<()> {
    db.execute(
        "INSERT INTO quotas (owner, \"limit\") VALUES (?, ?)",
        params![owner, limit],
    )?;
    add_items(db, owner, items)
}

/// Deletes `owner`'s quota and its items.
pub fn delete(db: &Db, owner: &str) -> DbResult<()> {
    db.execute("DELETE FROM quota_items WHERE owner = ?", params![owner])?;
    db.execute("DELETE FROM quotas WHERE owner = ?", params![owner])
}

/// The quota item of unit `number` of `app`.
pub fn unit_item(app: &str, number: i64) -> String {
    format!("{app}-{number}")
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::native::NativeDb;
    use crate::schema;

    #[test]
    fn available_counts_items_and_never_goes_negative() {
        let db = NativeDb::memory();
        schema::migrate(&db, &[], "now").unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), None);
        create(&db, "a@b.com", 2, &["x".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(1));
        add_items(&db, "a@b.com", &["y".to_string(), "z".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(0));
        release(&db, "a@b.com", &["x".to_string(), "y".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(1));
        delete(&db, "a@b.com").unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), None);
    }
}
