//! `quotas`: reading and setting quotas (API.md 3.4). spin.toml routes `/quota/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::{ADMIN, ANY_TOKEN};
use tsuru_core::quotas;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/quota/:owner", access: ANY_TOKEN, handler: quotas::get },
    Route { method: "PUT", path: "/quota/:owner", access: ADMIN, handler: quotas::set },
];

// The export exists only in the wasm build, so that native test builds can link every
// component's route table into one binary.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    tsuru_core::runtime::spin::serve(ROUTES, req, out)
}
