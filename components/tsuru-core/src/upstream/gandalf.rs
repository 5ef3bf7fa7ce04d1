//! The Gandalf git-server protocol (API.md 5.2). Every call is skipped, and counts as
//! success, when `gandalf_url` is empty. Failures carry API.md's `<reason>`.

use crate::runtime::context::Ctx;
use crate::runtime::outbound::{join_url, OutboundRequest};
use crate::runtime::request::encode_segment;
use serde_json::{json, Value};

const DOWN: &str = "Failed to connect to Gandalf server, it's probably down.";

/// Whether a Gandalf server is configured (`gandalf_url`); without one every call is
/// skipped and counts as success.
pub fn is_configured(ctx: &Ctx) -> bool {
    ctx.config.gandalf_url().is_some()
}

fn call(ctx: &Ctx, method: &str, path: &str, body: Option<Value>) -> Result<(), String> {
    let Some(base) = ctx.config.gandalf_url() else {
        return Ok(());
    };
    let mut request = OutboundRequest::new(method, join_url(&base, path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    match ctx.send(&request) {
        Ok(response) if response.is_success() => Ok(()),
        Ok(response) => Err(response.reason()),
        Err(transport) => {
            eprintln!("gandalf {method} {path}: {transport}");
            Err(DOWN.to_string())
        }
    }
}

/// `POST /user` with the user's keys (name -> content).
pub fn create_user(ctx: &Ctx, email: &str, keys: &[(String, String)]) -> Result<(), String> {
    let keys: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(name, content)| (name.clone(), Value::String(content.clone())))
        .collect();
    call(
        ctx,
        "POST",
        "/user",
        Some(json!({"name": email, "keys": keys})),
    )
}

pub fn remove_user(ctx: &Ctx, email: &str) -> Result<(), String> {
    call(
        ctx,
        "DELETE",
        &format!("/user/{}", encode_segment(email)),
        None,
    )
}

pub fn create_repository(ctx: &Ctx, app: &str, users: &[String]) -> Result<(), String> {
    call(
        ctx,
        "POST",
        "/repository",
        Some(json!({"name": app, "users": users, "ispublic": false})),
    )
}

pub fn remove_repository(ctx: &Ctx, app: &str) -> Result<(), String> {
    call(
        ctx,
        "DELETE",
        &format!("/repository/{}", encode_segment(app)),
        None,
    )
}

pub fn grant(ctx: &Ctx, repositories: &[String], users: &[String]) -> Result<(), String> {
    call(
        ctx,
        "POST",
        "/repository/grant",
        Some(json!({"repositories": repositories, "users": users})),
    )
}

pub fn revoke(ctx: &Ctx, repositories: &[String], users: &[String]) -> Result<(), String> {
    call(
        ctx,
        "DELETE",
        "/repository/revoke",
        Some(json!({"repositories": repositories, "users": users})),
    )
}

pub fn add_key(ctx: &Ctx, email: &str, name: &str, content: &str) -> Result<(), String> {
    call(
        ctx,
        "POST",
        &format!("/user/{}/key", encode_segment(email)),
        Some(json!({ name: content })),
    )
}

pub fn remove_key(ctx: &Ctx, email: &str, name: &str) -> Result<(), String> {
    call(
        ctx,
        "DELETE",
        &format!(
            "/user/{}/key/{}",
            encode_segment(email),
            encode_segment(name)
        ),
        None,
    )
}
