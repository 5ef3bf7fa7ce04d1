//! `apps`: apps, their env, units, team access, cname, logs, restart, swap, start, run
//! and deploys (API.md 3.1, 9). spin.toml routes `/apps/...`, `/swap`, `/deploys` and
//! `/logs` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::apps::{
    cname, deploys, env, lifecycle, listing, logs, operations, team_access, units,
};
use tsuru_core::identity::access::{ADMIN, ANY_TOKEN, USER};
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/apps", access: USER, handler: listing::list },
    Route { method: "POST", path: "/apps", access: USER, handler: lifecycle::create },
    Route { method: "GET", path: "/apps/:app", access: USER, handler: listing::info },
    Route { method: "DELETE", path: "/apps/:app", access: USER, handler: lifecycle::remove },
    Route { method: "GET", path: "/apps/:app/restart", access: USER, handler: operations::restart },
    Route { method: "POST", path: "/apps/:app/restart", access: USER, handler: operations::restart },
    Route { method: "GET", path: "/apps/:app/env", access: USER, handler: env::get },
    Route { method: "POST", path: "/apps/:app/env", access: USER, handler: env::set },
    Route { method: "DELETE", path: "/apps/:app/env", access: USER, handler: env::unset },
    Route { method: "PUT", path: "/apps/:app/units", access: USER, handler: units::add },
    Route { method: "DELETE", path: "/apps/:app/units", access: USER, handler: units::remove },
    Route { method: "PUT", path: "/apps/:app/:team", access: USER, handler: team_access::grant },
    Route { method: "DELETE", path: "/apps/:app/:team", access: USER, handler: team_access::revoke },
    Route { method: "POST", path: "/apps/:app/cname", access: USER, handler: cname::set_cname },
    Route { method: "DELETE", path: "/apps/:app/cname", access: USER, handler: cname::unset_cname },
    Route { method: "GET", path: "/apps/:app/log", access: USER, handler: logs::read_log },
    Route { method: "POST", path: "/apps/:app/log", access: ANY_TOKEN, handler: logs::append_log },
    Route { method: "GET", path: "/apps/:app/available", access: ANY_TOKEN, handler: units::available },
    Route { method: "PUT", path: "/swap", access: USER, handler: operations::swap },
    Route { method: "POST", path: "/apps/:app/repository/clone", access: ANY_TOKEN, handler: deploys::deploy },
    Route { method: "POST", path: "/apps/:app/deploy", access: ANY_TOKEN, handler: deploys::deploy },
    Route { method: "GET", path: "/deploys", access: ADMIN, handler: deploys::list },
    Route { method: "GET", path: "/apps/:app/start", access: USER, handler: operations::start },
    Route { method: "POST", path: "/apps/:app/run", access: USER, handler: operations::run },
    Route { method: "DELETE", path: "/logs", access: ADMIN, handler: logs::remove },
];

tsuru_core::spin_component!(ROUTES);
