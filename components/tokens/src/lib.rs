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

tsuru_core::spin_component!(ROUTES);
