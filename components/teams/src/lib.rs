//! `teams`: teams and their members (API.md 3.8). spin.toml routes `/teams/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::USER;
use tsuru_core::identity::teams;
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/teams", access: USER, handler: teams::list },
    Route { method: "POST", path: "/teams", access: USER, handler: teams::create },
    Route { method: "GET", path: "/teams/:team", access: USER, handler: teams::info },
    Route { method: "DELETE", path: "/teams/:team", access: USER, handler: teams::remove },
    Route { method: "PUT", path: "/teams/:team/:user", access: USER, handler: teams::add_member },
    Route { method: "DELETE", path: "/teams/:team/:user", access: USER, handler: teams::remove_member },
];

tsuru_core::spin_component!(ROUTES);
