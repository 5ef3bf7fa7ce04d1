//! Application lifecycle: apps, env, units, access, cname, logs, swap (API.md 3.1).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{app_env, apps, units, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/apps", access: Access::User, handler: apps::list },
    Route { method: "POST", path: "/apps", access: Access::User, handler: apps::create },
    Route { method: "GET", path: "/apps/:app", access: Access::User, handler: apps::info },
    Route { method: "DELETE", path: "/apps/:app", access: Access::User, handler: apps::remove },
    Route { method: "GET", path: "/apps/:app/restart", access: Access::User, handler: apps::restart },
    Route { method: "POST", path: "/apps/:app/restart", access: Access::User, handler: apps::restart },
    Route { method: "GET", path: "/apps/:app/env", access: Access::User, handler: app_env::get },
    Route { method: "POST", path: "/apps/:app/env", access: Access::User, handler: app_env::set },
    Route { method: "DELETE", path: "/apps/:app/env", access: Access::User, handler: app_env::unset },
    Route { method: "PUT", path: "/apps/:app/units", access: Access::User, handler: units::add },
    Route { method: "DELETE", path: "/apps/:app/units", access: Access::User, handler: units::remove },
    Route { method: "PUT", path: "/apps/:app/:team", access: Access::User, handler: apps::grant },
    Route { method: "DELETE", path: "/apps/:app/:team", access: Access::User, handler: apps::revoke },
    Route { method: "POST", path: "/apps/:app/cname", access: Access::User, handler: apps::set_cname },
    Route { method: "DELETE", path: "/apps/:app/cname", access: Access::User, handler: apps::unset_cname },
    Route { method: "GET", path: "/apps/:app/log", access: Access::User, handler: apps::read_log },
    Route { method: "POST", path: "/apps/:app/log", access: Access::AnyToken, handler: apps::append_log },
    Route { method: "GET", path: "/apps/:app/available", access: Access::AnyToken, handler: apps::available },
    Route { method: "PUT", path: "/swap", access: Access::User, handler: apps::swap },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
