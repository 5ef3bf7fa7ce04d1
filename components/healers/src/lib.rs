//! `healers`: the configured healers, and running one (API.md 3.5). spin.toml routes
//! `/healers/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::healers;
use tsuru_core::identity::access::ANY_TOKEN;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/healers", access: ANY_TOKEN, handler: healers::list },
    Route { method: "GET", path: "/healers/:healer", access: ANY_TOKEN, handler: healers::execute },
];

// The export exists only in the wasm build, so that native test builds can link every
// component's route table into one binary.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    tsuru_core::runtime::spin::serve(ROUTES, req, out)
}
