//! Healers (API.md 5.4): `GET <url>` of a configured healer, no body, no credentials.

use crate::runtime::context::Ctx;
use crate::runtime::outbound::OutboundRequest;

/// Calls the healer at `url`; any 2xx succeeds, otherwise API.md's `<reason>`.
pub fn execute(ctx: &Ctx, url: &str) -> Result<(), String> {
    match ctx.send(&OutboundRequest::new("GET", url)) {
        Ok(response) if response.is_success() => Ok(()),
        Ok(response) => Err(response.reason()),
        Err(transport) => Err(transport),
    }
}
