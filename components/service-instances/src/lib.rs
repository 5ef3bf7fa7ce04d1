//! Service instances, bind and unbind (API.md 3.3).
//! Its routes are `tsuru_core::routes::SERVICE_INSTANCES`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(tsuru_core::routes::SERVICE_INSTANCES, req, out)
}
