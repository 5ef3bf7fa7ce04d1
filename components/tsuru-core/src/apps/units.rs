//! Adding and removing an app's units (API.md 3.1 units routes). Unit numbers come from
//! the app's counter and are never reused; each unit may hold an item of the app's quota.
//! Numbers and quota items are reserved in one transaction before the provisioner is
//! called, and the units recorded in another after it.

use crate::apps::records::{
    load_for_caller, load_for_user, load_for_with, not_found, Extra, APP_COLUMN_COUNT,
};
use crate::apps::{bound_services, env, quota};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbError, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::provisioner;
use serde_json::json;

/// Most units one request may add (API.md 7.16).
const MAX_ADDED: u32 = 100;

/// The plain-text body: a decimal integer in 1..=u32::MAX, whitespace around it ignored.
fn requested_count(ctx: &Ctx) -> ApiResult<u32> {
    let text = String::from_utf8_lossy(&ctx.req.body);
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request(
            "You must provide the number of units.",
        ));
    }
    match text.parse::<u32>() {
        Ok(n) if n > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(ApiError::bad_request(
            "Invalid number of units: the number must be an integer greater than 0.",
        )),
    }
}

/// `PUT /apps/:app/units`
pub fn add(ctx: &mut Ctx) -> ApiResult<Response> {
    let count = requested_count(ctx)?;
    if count > MAX_ADDED {
        return Err(ApiError::bad_request(
            "Invalid number of units: at most 100 units can be added at once.",
        ));
    }
    let count = i64::from(count);
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    // With the built-in provisioner there is no call to wait for: one transaction.
    let at_once = provisioner::is_builtin(ctx);
    // (1) In one transaction: the checks, the unit numbers and their quota items.
    let (app, numbers, env, reserved) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let columns = format!("{}{}", env::VALUES_COLUMN, quota::APP_ROOM_COLUMNS);
        let (app, row) = load_for_with(
            db,
            ctx.param("app"),
            user,
            admin_team.as_deref(),
            Extra {
                columns: &columns,
                params: Vec::new(),
            },
        )?;
        let quota = match quota::app_room_from(&row, APP_COLUMN_COUNT + 1) {
            Some((_, room)) if room < count => {
                return Err(ApiError::forbidden(format!(
                    "Quota exceeded. Available: {room}. Requested: {count}."
                )))
            }
            Some((quota_id, _)) => Some(quota_id),
            None => None,
        };
        let first = db
            .query_opt(
                "UPDATE apps SET next_unit = next_unit + ? WHERE id = ? RETURNING next_unit - ?",
                params![count, app.id, count],
            )?
            .ok_or_else(|| not_found(&app.name))?
            .int(0);
        let numbers: Vec<i64> = (first..first + count).collect();
        if let Some(quota_id) = quota {
            quota::reserve(db, quota_id, &items(&app.name, &numbers))?;
        }
        if at_once {
            let units = provisioner::started(&names(&app.name, &numbers));
            record_units(
                db,
                &app.name,
                app.id,
                &numbers,
                &units,
                quota.is_some(),
                &user.email,
            )?;
        }
        let env = env::values_from(&row, APP_COLUMN_COUNT);
        Ok((app, numbers, env, quota.is_some()))
    })?;
    if !at_once {
        // (2) Provision them, (3) record them; a failure releases the reserved items.
        let added = provisioner::add_units(ctx, &app.name, &names(&app.name, &numbers), &env)
            .map_err(|reason| {
                ApiError::bad_gateway(format!(
                    "Failed to add units to the app \"{}\": {reason}",
                    app.name
                ))
            })
            .and_then(|units| {
                ctx.db()?.transaction(|db| {
                    record_units(
                        db,
                        &app.name,
                        app.id,
                        &numbers,
                        &units,
                        reserved,
                        &user.email,
                    )
                })
            });
        if let Err(e) = added {
            let items = items(&app.name, &numbers);
            let released = ctx
                .db()
                .and_then(|db| db.transaction(|db| Ok(quota::release(db, app.id, &items)?)));
            if let Err(release) = released {
                eprintln!("releasing quota items of app {}: {release}", app.name);
            }
            return Err(e);
        }
    }
    // (4) Bind the new units to the app's service instances.
    bound_services::bind_new_units(ctx, app.id, &numbers);
    Ok(Response::empty())
}

fn names(app: &str, numbers: &[i64]) -> Vec<String> {
    numbers.iter().map(|k| format!("{app}/{k}")).collect()
}

fn items(app: &str, numbers: &[i64]) -> Vec<String> {
    numbers.iter().map(|k| quota::unit_item(app, *k)).collect()
}

/// Step (3): the units the provisioner reported, with their quota items, and the audit
/// event. The app must still be there: a unit never attaches to a namesake.
fn record_units(
    db: &Db,
    app: &str,
    app_id: i64,
    numbers: &[i64],
    units: &[provisioner::UnitStatus],
    reserved: bool,
    actor: &str,
) -> ApiResult<()> {
    let new_units: Vec<NewUnit> = numbers
        .iter()
        .zip(units)
        .map(|(number, status)| NewUnit {
            number: *number,
            status,
            quota_item: reserved.then(|| quota::unit_item(app, *number)),
        })
        .collect();
    insert_units(db, app_id, &new_units).map_err(|e| {
        if e.is_foreign_key_violation() {
            // The app was removed meanwhile; its quota went with it.
            not_found(app)
        } else {
            e.into()
        }
    })?;
    let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
    audit::record_in(db, actor, "add-units", app, json!({ "units": names }));
    Ok(())
}

/// Removal order: `down` and unknown states first, then `building`, `unreachable`, `started`.
fn state_weight(state: &str) -> u8 {
    match state {
        "building" => 1,
        "unreachable" => 2,
        "started" => 3,
        _ => 0,
    }
}

/// Sorts `(number, name, state)` units into removal order: lowest weight first and,
/// among equals, the newest unit first.
fn sort_victims(units: &mut [(i64, String, String)]) {
    units.sort_by_key(|(number, _, state)| (state_weight(state), std::cmp::Reverse(*number)));
}

/// `DELETE /apps/:app/units`
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let count = requested_count(ctx)? as usize;
    let app = load_for_user(ctx, ctx.param("app"))?;
    let mut units: Vec<(i64, String, String)> = app
        .units
        .iter()
        .map(|u| (u.number, u.name.clone(), u.state.clone()))
        .collect();
    if count == units.len() {
        return Err(ApiError::bad_request(
            "Cannot remove all units from an app.",
        ));
    }
    if count > units.len() {
        return Err(ApiError::bad_request(format!(
            "Cannot remove {count} units from this app, it has only {} units.",
            units.len()
        )));
    }
    sort_victims(&mut units);
    let email = ctx.user()?.email.clone();
    let mut removed = Vec::new();
    for (number, name, _) in units.into_iter().take(count) {
        provisioner::remove_unit(ctx, &app.name, number).map_err(|reason| {
            ApiError::bad_gateway(format!("Failed to remove the unit {name}: {reason}"))
        })?;
        bound_services::unbind_unit(ctx, app.id, number);
        removed.push(name);
        let last = removed.len() == count;
        ctx.db()?.transaction(|db| -> ApiResult<()> {
            db.execute(
                "DELETE FROM units WHERE app_id = ? AND number = ?",
                params![app.id, number],
            )?;
            quota::release(db, app.id, &[quota::unit_item(&app.name, number)])?;
            // The event goes with the last removal: one commit, one wait for the lock.
            if last {
                let extra = json!({ "units": removed });
                audit::record_in(db, &email, "remove-units", &app.name, extra);
            }
            Ok(())
        })?;
    }
    Ok(Response::empty())
}

/// A unit to record: its number, what the provisioner reported, its quota item.
pub(crate) struct NewUnit<'a> {
    pub number: i64,
    pub status: &'a provisioner::UnitStatus,
    pub quota_item: Option<String>,
}

/// Records `units` of app `app_id` in one statement, so a request holds the write lock
/// for the same few statements however many units it adds.
pub(crate) fn insert_units(db: &Db, app_id: i64, units: &[NewUnit]) -> Result<(), DbError> {
    let mut values = Vec::with_capacity(units.len() * 6);
    for unit in units {
        values.extend([
            Value::from(app_id),
            Value::from(unit.number),
            Value::from(unit.status.name.as_str()),
            Value::from(unit.status.ip.as_str()),
            Value::from(unit.status.state.as_str()),
            Value::from(unit.quota_item.as_deref()),
        ]);
    }
    db.insert_rows(
        "INSERT INTO units (app_id, number, name, ip, state, quota_item) VALUES",
        6,
        &values,
        "",
    )
}

/// `GET /apps/:app/available`: an app is available when one of its units is.
pub fn available(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_caller(ctx, ctx.param("app"))?;
    if !app
        .units
        .iter()
        .any(|u| matches!(u.state.as_str(), "started" | "unreachable"))
    {
        return Err(ApiError::precondition_failed(
            "App must be available to receive pushs.",
        ));
    }
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_order() {
        let mut units: Vec<(i64, String, String)> = [
            (0, "started"),
            (1, "building"),
            (2, "down"),
            (3, "weird"),
            (4, "unreachable"),
            (5, "building"),
        ]
        .iter()
        .map(|(n, s)| (*n, format!("a/{n}"), s.to_string()))
        .collect();
        sort_victims(&mut units);
        let order: Vec<i64> = units.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(order, vec![3, 2, 5, 1, 4, 0]);
    }
}
