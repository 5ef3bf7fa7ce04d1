//! `GET /healthcheck`, `GET /openapi.json`, and the fallback that answers 404 for every
//! path no other component owns (API.md 3.10).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{meta, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/healthcheck", access: Access::None, handler: meta::healthcheck },
    Route { method: "GET", path: "/healthcheck/", access: Access::None, handler: meta::healthcheck },
    Route { method: "GET", path: "/openapi.json", access: Access::None, handler: meta::openapi },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
