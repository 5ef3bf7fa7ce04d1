//! Quotas (API.md 3.4).
//! Its routes are `tsuru_core::routes::QUOTAS`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(tsuru_core::routes::QUOTAS, req, out)
}
