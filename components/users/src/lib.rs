//! User accounts, login, password reset, SSH keys (API.md 3.7).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use tsuru_core::{users, Access, Route};

#[rustfmt::skip]
const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/users", access: Access::Custom(users::registration_gate), handler: users::register },
    Route { method: "POST", path: "/users/:email/password", access: Access::None, handler: users::reset_password },
    Route { method: "POST", path: "/users/:email/tokens", access: Access::None, handler: users::login },
    Route { method: "DELETE", path: "/users/tokens", access: Access::AnyToken, handler: users::logout },
    Route { method: "PUT", path: "/users/password", access: Access::User, handler: users::change_password },
    Route { method: "DELETE", path: "/users", access: Access::User, handler: users::remove },
    Route { method: "POST", path: "/users/keys", access: Access::User, handler: users::add_key },
    Route { method: "DELETE", path: "/users/keys", access: Access::User, handler: users::remove_key },
    Route { method: "GET", path: "/users/:email/keys", access: Access::User, handler: users::list_keys },
];

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(ROUTES, req, out)
}
