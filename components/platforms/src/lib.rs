//! `platforms`: the platforms apps are created with (API.md 3.6). spin.toml routes
//! `/platforms/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::{ADMIN, USER};
use tsuru_core::platforms;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/platforms", access: USER, handler: platforms::list },
    Route { method: "POST", path: "/platforms", access: ADMIN, handler: platforms::add },
    Route { method: "DELETE", path: "/platforms/:platform", access: ADMIN, handler: platforms::remove },
];

// The export exists only in the wasm build, so that native test builds can link every
// component's route table into one binary.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    tsuru_core::runtime::spin::serve(ROUTES, req, out)
}
