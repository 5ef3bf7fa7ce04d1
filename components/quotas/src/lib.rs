//! Quotas (API.md 3.4).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{quotas, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/quota/:owner", access: Access::AnyToken, handler: quotas::get },
    Route { method: "PUT", path: "/quota/:owner", access: Access::Admin, handler: quotas::set },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
