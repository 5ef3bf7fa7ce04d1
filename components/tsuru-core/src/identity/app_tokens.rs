//! Admin-issued app tokens (API.md 3.9).

use crate::identity::tokens::{self, APP_TOKEN_SECONDS};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::DbResult;
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
    let app_id = db
        .query_opt(
            "SELECT id FROM apps WHERE name = ?",
            params![client.as_str()],
        )?
        .map(|r| r.int(0));
    let (token, record) = tokens::issue_app_token(ctx.kv()?, &client, app_id)?;
    let export = body.export.unwrap_or(false);
    let event = json!({ "export": export });
    if let (true, Some(app_id)) = (export, app_id) {
        let actor = audit::actor(ctx.caller.as_ref());
        let exported = db.transaction(|db| -> DbResult<()> {
            // By id: an app removed meanwhile gets nothing, and neither does a namesake.
            db.execute(
                "INSERT OR REPLACE INTO env_vars (app_id, name, value, public, instance_id) \
                 SELECT id, 'TSURU_APP_TOKEN', ?, 0, NULL FROM apps WHERE id = ?",
                params![token.as_str(), app_id],
            )?;
            audit::record_in(db, &actor, "create-token", &client, event);
            Ok(())
        });
        if let Err(e) = exported {
            tokens::delete_token(ctx.kv()?, &token)?;
            return Err(e.into());
        }
    } else {
        audit::record(ctx, "create-token", &client, event);
    }
    Ok(Response::json(&json!({
        "Token": token,
        "Creation": rfc3339(record.creation),
        "Expires": APP_TOKEN_SECONDS,
        "AppName": client,
    })))
}
