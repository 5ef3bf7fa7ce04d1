//! Application lifecycle: apps, env, units, access, cname, logs, swap (API.md 3.1).
//! Its routes are `tsuru_core::routes::APPS`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(tsuru_core::routes::APPS, req, out)
}
