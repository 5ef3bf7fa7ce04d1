//! Teams and their members (API.md 3.8).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{teams, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/teams", access: Access::User, handler: teams::list },
    Route { method: "POST", path: "/teams", access: Access::User, handler: teams::create },
    Route { method: "GET", path: "/teams/:team", access: Access::User, handler: teams::info },
    Route { method: "DELETE", path: "/teams/:team", access: Access::User, handler: teams::remove },
    Route { method: "PUT", path: "/teams/:team/:user", access: Access::User, handler: teams::add_member },
    Route { method: "DELETE", path: "/teams/:team/:user", access: Access::User, handler: teams::remove_member },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
