//! `services`: services, their manifests, documentation and team grants (API.md 3.2).
//! spin.toml routes `/services/...` here (except `/services/instances/...`).
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::USER;
use tsuru_core::runtime::router::Route;
use tsuru_core::services::catalog;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/services", access: USER, handler: catalog::list },
    Route { method: "POST", path: "/services", access: USER, handler: catalog::create },
    Route { method: "PUT", path: "/services", access: USER, handler: catalog::update },
    Route { method: "GET", path: "/services/:service", access: USER, handler: catalog::info },
    Route { method: "DELETE", path: "/services/:service", access: USER, handler: catalog::remove },
    Route { method: "GET", path: "/services/:service/doc", access: USER, handler: catalog::doc },
    Route { method: "PUT", path: "/services/:service/doc", access: USER, handler: catalog::set_doc },
    Route { method: "GET", path: "/services/:service/plans", access: USER, handler: catalog::plans },
    Route { method: "PUT", path: "/services/:service/:team", access: USER, handler: catalog::grant },
    Route { method: "DELETE", path: "/services/:service/:team", access: USER, handler: catalog::revoke },
];

tsuru_core::spin_component!(ROUTES);
