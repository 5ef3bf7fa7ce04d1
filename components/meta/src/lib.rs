//! `meta`: the health check, the OpenAPI document, the JSON schemas, and the fallback
//! that answers 404 for every path no other component owns (API.md 3.10, 9.5). spin.toml
//! routes `/healthcheck/...`, `/openapi.json`, `/schema/...` and `/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::{NONE, USER};
use tsuru_core::meta;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/healthcheck", access: NONE, handler: meta::healthcheck },
    Route { method: "GET", path: "/healthcheck/", access: NONE, handler: meta::healthcheck },
    Route { method: "GET", path: "/openapi.json", access: NONE, handler: meta::openapi },
    Route { method: "GET", path: "/schema/app", access: USER, handler: meta::app_schema },
    Route { method: "GET", path: "/schema/service", access: USER, handler: meta::service_schema },
    Route { method: "GET", path: "/schema/services", access: USER, handler: meta::services_schema },
];

tsuru_core::spin_component!(ROUTES);
