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

tsuru_core::spin_component!(ROUTES);
