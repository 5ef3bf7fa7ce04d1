//! Healers (API.md 3.5).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{healers, Access, Route};

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/healers",
        access: Access::AnyToken,
        handler: healers::list,
    },
    Route {
        method: "GET",
        path: "/healers/:healer",
        access: Access::AnyToken,
        handler: healers::execute,
    },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
