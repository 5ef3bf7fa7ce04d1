//! `tokens`: admin-issued app tokens (API.md 3.9). spin.toml routes `/tokens` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::ADMIN;
use tsuru_core::identity::app_tokens;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/tokens", access: ADMIN, handler: app_tokens::create },
];

// The export exists only in the wasm build, so that native test builds can link every
// component's route table into one binary.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(req: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    tsuru_core::runtime::spin::serve(ROUTES, req, out)
}
