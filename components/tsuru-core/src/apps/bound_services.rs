//! The service instances bound to an app, and the service API calls that app changes
//! make to them (API.md 3.1: unbind on removal, bind and unbind of units). Their failures
//! are reported and ignored, so these routes cannot get stuck on a service.

use crate::params;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult};
use crate::upstream::service_api::ServiceApi;

/// The instances bound to an app, with the API of each one's service; instances whose
/// service cannot be called are reported and skipped.
fn bound_instance_apis(ctx: &Ctx, app: i64) -> Vec<(String, ServiceApi)> {
    let rows = ctx.db().and_then(|db| {
        Ok(db.query(
            "SELECT i.name, i.service_id FROM instance_apps b \
             JOIN service_instances i ON i.id = b.instance_id WHERE b.app_id = ? ORDER BY i.name",
            params![app],
        )?)
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bound instances of app {app}: {e}");
            return Vec::new();
        }
    };
    let mut apis = Vec::new();
    for row in rows {
        let instance = row.text(0);
        match ctx.db().and_then(|db| ServiceApi::load(db, row.int(1))) {
            Ok(api) => apis.push((instance, api)),
            Err(e) => eprintln!("instance {instance} bound to app {app}: {e}"),
        }
    }
    apis
}

/// The app's address and its units' `(number, ip)`, in unit-number order.
fn app_addresses(db: &Db, app: i64) -> DbResult<(String, Vec<(i64, String)>)> {
    let ip = db
        .query_opt("SELECT ip FROM apps WHERE id = ?", params![app])?
        .map(|r| r.text(0))
        .unwrap_or_default();
    let units = db
        .query(
            "SELECT number, ip FROM units WHERE app_id = ? ORDER BY number",
            params![app],
        )?
        .iter()
        .map(|r| (r.int(0), r.text(1)))
        .collect();
    Ok((ip, units))
}

/// Calls `each(api, instance, app ip, unit ip)` for every instance bound to the app and
/// every unit `selected` by number; for the app routes, which ignore these failures.
fn for_bound_units(
    ctx: &Ctx,
    app: i64,
    selected: impl Fn(i64) -> bool,
    each: impl Fn(&ServiceApi, &str, &str, &str),
) {
    // Most apps have no bound instance: then their addresses are not read at all.
    let apis = bound_instance_apis(ctx, app);
    if apis.is_empty() {
        return;
    }
    let (app_ip, units) = match ctx.db().and_then(|db| Ok(app_addresses(db, app)?)) {
        Ok(addresses) => addresses,
        Err(e) => {
            eprintln!("units of app {app}: {e}");
            return;
        }
    };
    for (instance, api) in apis {
        for (_, unit_ip) in units.iter().filter(|(number, _)| selected(*number)) {
            each(&api, &instance, &app_ip, unit_ip);
        }
    }
}

/// DELETE /apps/:app step 1 (API.md 3.1): the service API unbind of every unit for
/// every bound instance; failures are reported and ignored. The bindings themselves
/// are deleted with the app.
pub fn unbind_app_everywhere(ctx: &Ctx, app: i64) {
    for_bound_units(
        ctx,
        app,
        |_| true,
        |api, instance, _, unit_ip| api.unbind_ignoring_failure(ctx, instance, unit_ip),
    );
}

/// PUT /apps/:app/units step 4 (API.md 3.1): binds the new units (by number) to every
/// instance bound to the app; failures and returned variables are ignored.
pub fn bind_new_units(ctx: &Ctx, app: i64, numbers: &[i64]) {
    for_bound_units(
        ctx,
        app,
        |number| numbers.contains(&number),
        |api, instance, app_ip, unit_ip| api.bind_ignoring_failure(ctx, instance, app_ip, unit_ip),
    );
}

/// DELETE /apps/:app/units (API.md 3.1): unbinds a unit (by number), before its removal,
/// from every instance bound to the app; failures are ignored.
pub fn unbind_unit(ctx: &Ctx, app: i64, number: i64) {
    for_bound_units(
        ctx,
        app,
        |n| n == number,
        |api, instance, _, unit_ip| api.unbind_ignoring_failure(ctx, instance, unit_ip),
    );
}
