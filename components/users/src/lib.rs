//! `users`: accounts, login, password change and reset, SSH keys (API.md 3.7).
//! spin.toml routes `/users/...` here.
//!
//! The route table below is this component's whole API: method, path, who may call it,
//! and the handler in `tsuru_core` that holds the route's rules.

use tsuru_core::identity::access::{ANY_TOKEN, NONE, USER};
use tsuru_core::identity::keys;
use tsuru_core::identity::users::{self, REGISTRATION};
use tsuru_core::identity::{resets, sessions};
use tsuru_core::runtime::router::Route;

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route { method: "POST", path: "/users", access: REGISTRATION, handler: users::register },
    Route { method: "POST", path: "/users/:email/password", access: NONE, handler: resets::reset_password },
    Route { method: "POST", path: "/users/:email/tokens", access: NONE, handler: sessions::login },
    Route { method: "DELETE", path: "/users/tokens", access: ANY_TOKEN, handler: sessions::logout },
    Route { method: "PUT", path: "/users/password", access: USER, handler: users::change_password },
    Route { method: "DELETE", path: "/users", access: USER, handler: users::remove },
    Route { method: "POST", path: "/users/keys", access: USER, handler: keys::add_key },
    Route { method: "DELETE", path: "/users/keys", access: USER, handler: keys::remove_key },
    Route { method: "GET", path: "/users/:email/keys", access: USER, handler: keys::list_keys },
];

tsuru_core::spin_component!(ROUTES);
