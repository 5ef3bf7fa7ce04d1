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

tsuru_core::spin_component!(ROUTES);
