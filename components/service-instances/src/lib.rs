//! Service instances, bind and unbind (API.md 3.3).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{instances, Access, Route};

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/services/instances",
        access: Access::User,
        handler: instances::list,
    },
    Route {
        method: "POST",
        path: "/services/instances",
        access: Access::User,
        handler: instances::create,
    },
    Route {
        method: "GET",
        path: "/services/instances/:instance",
        access: Access::User,
        handler: instances::info,
    },
    Route {
        method: "DELETE",
        path: "/services/instances/:instance",
        access: Access::User,
        handler: instances::remove,
    },
    Route {
        method: "GET",
        path: "/services/instances/:instance/status",
        access: Access::User,
        handler: instances::status,
    },
    Route {
        method: "PUT",
        path: "/services/instances/:instance/:app",
        access: Access::User,
        handler: instances::bind,
    },
    Route {
        method: "DELETE",
        path: "/services/instances/:instance/:app",
        access: Access::User,
        handler: instances::unbind,
    },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
