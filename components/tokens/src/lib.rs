//! Admin-issued app tokens (API.md 3.9).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{tokens, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/tokens", access: Access::Admin, handler: tokens::create },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
