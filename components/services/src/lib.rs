//! Services and their manifests (API.md 3.2).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{services, Access, Route};

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/services",
        access: Access::User,
        handler: services::list,
    },
    Route {
        method: "POST",
        path: "/services",
        access: Access::User,
        handler: services::create,
    },
    Route {
        method: "PUT",
        path: "/services",
        access: Access::User,
        handler: services::update,
    },
    Route {
        method: "GET",
        path: "/services/:service",
        access: Access::User,
        handler: services::info,
    },
    Route {
        method: "DELETE",
        path: "/services/:service",
        access: Access::User,
        handler: services::remove,
    },
    Route {
        method: "GET",
        path: "/services/:service/doc",
        access: Access::User,
        handler: services::doc,
    },
    Route {
        method: "PUT",
        path: "/services/:service/doc",
        access: Access::User,
        handler: services::set_doc,
    },
    Route {
        method: "PUT",
        path: "/services/:service/:team",
        access: Access::User,
        handler: services::grant,
    },
    Route {
        method: "DELETE",
        path: "/services/:service/:team",
        access: Access::User,
        handler: services::revoke,
    },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
