//! User accounts, login, password reset, SSH keys (API.md 3.7).
//! Its routes are `tsuru_core::routes::USERS`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(tsuru_core::routes::USERS, req, out)
}
