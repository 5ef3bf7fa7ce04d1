//! Platforms (API.md 3.6).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{platforms, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/platforms", access: Access::User, handler: platforms::list },
    Route { method: "POST", path: "/platforms", access: Access::Admin, handler: platforms::add },
    Route { method: "DELETE", path: "/platforms/:platform", access: Access::Admin, handler: platforms::remove },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
