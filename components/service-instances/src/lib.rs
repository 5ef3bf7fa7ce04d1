//! `service-instances`: service instances, and binding apps to them (API.md 3.3).
//! spin.toml routes `/services/instances/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::USER;
use tsuru_core::runtime::router::Route;
use tsuru_core::services::{bindings, instances};

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/services/instances", access: USER, handler: instances::list },
    Route { method: "POST", path: "/services/instances", access: USER, handler: instances::create },
    Route { method: "GET", path: "/services/instances/:instance", access: USER, handler: instances::info },
    Route { method: "DELETE", path: "/services/instances/:instance", access: USER, handler: instances::remove },
    Route { method: "GET", path: "/services/instances/:instance/status", access: USER, handler: instances::status },
    Route { method: "PUT", path: "/services/instances/:instance/:app", access: USER, handler: bindings::bind },
    Route { method: "DELETE", path: "/services/instances/:instance/:app", access: USER, handler: bindings::unbind },
];

tsuru_core::spin_component!(ROUTES);
