//! Health check and the OpenAPI document (API.md 3.10).

use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;

/// `SELECT 1` on SQLite: proves the database answers.
pub fn healthcheck(ctx: &mut Ctx) -> ApiResult<Response> {
    let healthy = ctx
        .db()
        .and_then(|db| db.execute("SELECT 1", &[]).map_err(ApiError::from));
    match healthy {
        Ok(()) => Ok(Response::text("WORKING")),
        Err(_) => Err(ApiError::new(500, "database unavailable")),
    }
}

/// The OpenAPI 3.1 document, kept in the repository and embedded at build time.
pub fn openapi(_ctx: &mut Ctx) -> ApiResult<Response> {
    let document = include_bytes!("openapi.json");
    Ok(Response::empty()
        .header("content-type", "application/json")
        .body(document.to_vec()))
}
