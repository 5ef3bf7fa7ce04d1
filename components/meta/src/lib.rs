//! `GET /healthcheck`, `GET /openapi.json`, and the fallback that answers 404 for every
//! path no other component owns (API.md 3.10).
//! Its routes are `tsuru_core::routes::META`.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    tsuru_core::spin::serve(tsuru_core::routes::META, req, out)
}
