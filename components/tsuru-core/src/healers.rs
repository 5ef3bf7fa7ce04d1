//! Healers (API.md 3.5, 5.4): named URLs from the `healers` variable that any caller may
//! trigger with a GET.

use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::healer;
use serde_json::{Map, Value};

/// GET /healers: `[{"<name>":"<url>"}]` in variable order.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let healers: Vec<Value> = ctx
        .config
        .healers()?
        .into_iter()
        .map(|(name, url)| Value::Object(Map::from_iter([(name, Value::String(url))])))
        .collect();
    Ok(Response::json(&healers))
}

/// GET /healers/:healer: calls the healer's URL; any 2xx is success.
pub fn execute(ctx: &mut Ctx) -> ApiResult<Response> {
    let name = ctx.param("healer");
    let healers = ctx.config.healers()?;
    let (_, url) = healers
        .iter()
        .find(|(healer, _)| healer == name)
        .ok_or_else(|| ApiError::not_found("Healer not found"))?;
    healer::execute(ctx, url).map_err(|reason| {
        ApiError::bad_gateway(format!("Failed to execute healer {name}: {reason}"))
    })?;
    Ok(Response::empty())
}
