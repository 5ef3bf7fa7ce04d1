//! Admin-issued app tokens (API.md 3.9).

use crate::identity::tokens::{self, APP_TOKEN_SECONDS};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::rfc3339;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct NewToken {
    client: Option<String>,
    export: Option<bool>,
}

/// `POST /tokens`
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: NewToken = ctx.json_object("Invalid JSON in request body.")?;
    let client = body.client.unwrap_or_default();
    if client.is_empty() {
        return Err(ApiError::bad_request("Missing client name in JSON body"));
    }
    let db = ctx.db()?;
    let serial = db
        .query_opt(
            "SELECT serial FROM apps WHERE name = ?",
            params![client.as_str()],
        )?
        .map(|r| r.int(0));
    let (token, record) = tokens::issue_app_token(ctx.kv()?, &client, serial)?;
    if body.export.unwrap_or(false) && serial.is_some() {
        let exported = db.execute(
            "INSERT OR REPLACE INTO env_vars (app, name, value, public, instance) VALUES (?, 'TSURU_APP_TOKEN', ?, 0, NULL)",
            params![client.as_str(), token.as_str()],
        );
        if let Err(e) = exported {
            tokens::delete_token(ctx.kv()?, &token)?;
            return Err(e.into());
        }
    }
    audit::record(
        ctx,
        "create-token",
        &client,
        json!({ "export": body.export.unwrap_or(false) }),
    );
    Ok(Response::json(&json!({
        "Token": token,
        "Creation": rfc3339(record.creation),
        "Expires": APP_TOKEN_SECONDS,
        "AppName": client,
    })))
}
