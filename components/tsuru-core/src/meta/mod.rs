//! Health check, the OpenAPI document and the JSON Schemas of the 2014 server (API.md
//! 3.10, 9.5). The documents are files of this folder, embedded at build time.

use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;

/// Proves the database answers, with one statement that is also the schema check. The
/// plain pragma reads the file header only: unlike `pragma_user_version`, it does not
/// make a new connection parse the whole schema.
pub fn healthcheck(ctx: &mut Ctx) -> ApiResult<Response> {
    let healthy = ctx.db().and_then(|db| {
        db.query_first("PRAGMA user_version", &[])
            .map_err(ApiError::from)
    });
    match healthy {
        Ok(_) => Ok(Response::text("WORKING")),
        Err(_) => Err(ApiError::new(500, "database unavailable")),
    }
}

fn json_document(document: &[u8]) -> Response {
    Response::empty()
        .header("content-type", "application/json")
        .body(document.to_vec())
}

/// `GET /openapi.json`: the OpenAPI 3.1 document.
pub fn openapi(_ctx: &mut Ctx) -> ApiResult<Response> {
    Ok(json_document(include_bytes!("openapi.json")))
}

/// `GET /schema/app`: the app object (API.md 3.1), as JSON Schema draft 4.
pub fn app_schema(_ctx: &mut Ctx) -> ApiResult<Response> {
    Ok(json_document(include_bytes!("schemas/app.json")))
}

/// `GET /schema/service`: one item of `GET /services/:service`.
pub fn service_schema(_ctx: &mut Ctx) -> ApiResult<Response> {
    Ok(json_document(include_bytes!("schemas/service.json")))
}

/// `GET /schema/services`: the list of `GET /services`.
pub fn services_schema(_ctx: &mut Ctx) -> ApiResult<Response> {
    Ok(json_document(include_bytes!("schemas/services.json")))
}
