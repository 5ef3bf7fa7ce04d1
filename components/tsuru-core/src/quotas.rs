//! The quota routes (API.md 3.4): reading a user's or an app's quota, and setting its
//! limit. The ledger the other routes reserve against is `apps::quota`.

use crate::apps::quota::{create_for_app, unit_item};
use crate::apps::records::{load_with, Extra};
use crate::params;
use crate::runtime::audit;
use crate::runtime::caller::Caller;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::request::parse_form;
use crate::runtime::response::Response;
use serde_json::json;

/// A quota's owner: a user (by email) or an app (by name), with its quota if it has one.
struct Owner {
    kind: Kind,
    id: i64,
    /// The limit, when a quota row exists.
    limit: Option<i64>,
    /// What counts against it: a user's apps; an app's reserved unit ids (its units when
    /// it has no quota).
    items: Vec<String>,
}

enum Kind {
    User,
    App,
}

/// Resolves `owner` in one statement; `404 Quota not found` when it is neither.
fn owner(db: &Db, owner: &str) -> ApiResult<Owner> {
    let row = db
        .query_opt(
            "SELECT 0, u.id, q.\"limit\", \
             (SELECT json_group_array(a.name) FROM apps a WHERE a.owner_id = u.id) \
             FROM users u LEFT JOIN quotas q ON q.user_id = u.id WHERE u.email = ?1 \
             UNION ALL \
             SELECT 1, a.id, q.\"limit\", CASE WHEN q.id IS NULL \
             THEN (SELECT json_group_array(n.number) FROM units n WHERE n.app_id = a.id) \
             ELSE (SELECT json_group_array(i.item) FROM quota_items i WHERE i.quota_id = q.id) END \
             FROM apps a LEFT JOIN quotas q ON q.app_id = a.id WHERE a.name = ?1",
            params![owner],
        )?
        .ok_or_else(not_found)?;
    let kind = if row.int(0) == 0 {
        Kind::User
    } else {
        Kind::App
    };
    let limit = row.opt_int(2);
    let mut items: Vec<String> = match (&kind, limit) {
        (Kind::App, None) => serde_json::from_str::<Vec<i64>>(&row.text(3))
            .unwrap_or_default()
            .into_iter()
            .map(|number| unit_item(owner, number))
            .collect(),
        _ => serde_json::from_str(&row.text(3)).unwrap_or_default(),
    };
    items.sort();
    Ok(Owner {
        kind,
        id: row.int(1),
        limit,
        items,
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
        Caller::User(user) => {
            let admin_team = ctx.config.admin_team();
            match load_with(
                ctx.db()?,
                owner,
                Some(user),
                admin_team.as_deref(),
                Extra::default(),
            ) {
                Ok((app, _)) => app.accessible,
                Err(e) if e.status == 404 => false,
                Err(e) => return Err(e),
            }
        }
    })
}

/// `GET /quota/:owner`
pub fn get(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("owner").to_string();
    if !may_read(ctx, &name)? {
        return Err(ApiError::forbidden("You do not have access to this quota"));
    }
    let owner = owner(ctx.db()?, &name)?;
    let (available, limit) = match owner.limit {
        Some(limit) => ((limit - owner.items.len() as i64).max(0), limit),
        None => (-1, -1),
    };
    Ok(Response::json(
        &json!({"items": owner.items, "available": available, "limit": limit}),
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

/// `PUT /quota/:owner`: sets the limit, creating the quota with the owner's current
/// items when it has none. An existing quota, the usual case, is changed by one update
/// that finds the owner itself and takes the write lock with no read before it (emails
/// hold an `@`, app names never do, so at most one owner matches); only when it changes
/// nothing is the owner read, in the same transaction, to create the quota or say 404.
pub fn set(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("owner").to_string();
    let limit = requested_limit(ctx)?;
    let email = ctx.user()?.email.clone();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let updated = db.query_opt(
            "UPDATE quotas SET \"limit\" = ?1 \
             WHERE user_id = (SELECT id FROM users WHERE email = ?2) \
             OR app_id = (SELECT id FROM apps WHERE name = ?2) RETURNING id",
            params![limit, name.as_str()],
        )?;
        if updated.is_none() {
            create(db, &name, limit)?;
        }
        audit::record_in(db, &email, "set-quota", &name, json!({"limit": limit}));
        Ok(())
    })?;
    Ok(Response::text("Quota changed sucessfully."))
}

/// Creates the quota of `name`, which has none (the caller's update found none to change).
fn create(db: &Db, name: &str, limit: i64) -> ApiResult<()> {
    let owner = owner(db, name)?;
    match (owner.kind, owner.limit) {
        (Kind::User, None) => db.execute(
            "INSERT INTO quotas (user_id, \"limit\") VALUES (?, ?)",
            params![owner.id, limit],
        )?,
        (Kind::App, None) => {
            create_for_app(db, owner.id, limit, &owner.items)?;
            // Units made while the app was unlimited now count, and release on removal.
            db.execute(
                "UPDATE units SET quota_item = ? || '-' || number \
                 WHERE app_id = ? AND quota_item IS NULL",
                params![name, owner.id],
            )?;
        }
        // The update holds the write lock: a quota cannot have appeared since.
        (_, Some(_)) => {
            return Err(ApiError::internal(format!(
                "the quota of {name} exists but was not updated"
            )))
        }
    }
    Ok(())
}
