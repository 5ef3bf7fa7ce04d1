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

tsuru_core::spin_component!(ROUTES);
