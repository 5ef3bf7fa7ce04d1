//! Healers (API.md 3.5, 5.4): named URLs from the `healers` variable that any caller may
//! trigger with a GET.

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::Response;
use crate::outbound::OutboundRequest;
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
    let reason = match ctx
        .outbound()
        .send(&OutboundRequest::new("GET", url.as_str()))
    {
        Ok(response) if response.is_success() => return Ok(Response::empty()),
        Ok(response) => response.reason(),
        Err(transport) => transport,
    };
    Err(ApiError::bad_gateway(format!(
        "Failed to execute healer {name}: {reason}"
    )))
}
