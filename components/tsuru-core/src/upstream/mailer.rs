//! Password-reset mail (API.md 5.5): a JSON POST to `mailer_url`, or one line on stderr
//! when it is empty (local use only).

use crate::runtime::context::Ctx;
use crate::runtime::outbound::OutboundRequest;
use serde_json::json;

/// Sends one mail; `Err` carries the `<reason>` of `Failed to send e-mail: <reason>`.
pub fn send(ctx: &Ctx, to: &str, subject: &str, body: &str) -> Result<(), String> {
    let message = json!({"to": to, "subject": subject, "body": body});
    let Some(url) = ctx.config.mailer_url() else {
        eprintln!("mail: {message}");
        return Ok(());
    };
    match ctx.send(&OutboundRequest::new("POST", url).json(&message)) {
        Ok(response) if response.is_success() => Ok(()),
        Ok(response) => Err(response.reason()),
        Err(transport) => Err(transport),
    }
}
