//! An app's environment variables (API.md 3.1 env routes, 4.1 `env_vars`): public
//! variables set by users, private ones set by the system or by service bindings.

use crate::apps::logs;
use crate::apps::records::load_for_user;
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Names only the system sets; user and service writes skip them.
pub const RESERVED: [&str; 4] = [
    "TSURU_APPNAME",
    "TSURU_HOST",
    "TSURU_APP_TOKEN",
    "TSURU_SERVICES",
];

/// What private values read as through the API.
pub const PRIVATE_MASK: &str = "*** (private variable)";

pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One variable as `GET /apps/:app/env` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    pub public: bool,
}

/// Every variable of the app sorted by name, private values masked.
pub fn list_masked(db: &Db, app: &str) -> DbResult<Vec<EnvVar>> {
    let rows = db.query(
        "SELECT name, value, public FROM env_vars WHERE app = ? ORDER BY name",
        params![app],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let public = r.bool(2);
            EnvVar {
                name: r.text(0),
                value: if public {
                    r.text(1)
                } else {
                    PRIVATE_MASK.to_string()
                },
                public,
            }
        })
        .collect())
}

/// The complete variable map, values unmasked: what the provisioner receives.
pub fn values(db: &Db, app: &str) -> DbResult<BTreeMap<String, String>> {
    let rows = db.query(
        "SELECT name, value FROM env_vars WHERE app = ?",
        params![app],
    )?;
    Ok(rows.iter().map(|r| (r.text(0), r.text(1))).collect())
}

/// Stores a private variable, replacing any variable of that name; `instance` tags
/// variables a service binding set.
pub fn set_private(
    db: &Db,
    app: &str,
    name: &str,
    value: &str,
    instance: Option<&str>,
) -> DbResult<()> {
    db.execute(
        "INSERT INTO env_vars (app, name, value, public, instance) VALUES (?, ?, ?, 0, ?) \
         ON CONFLICT (app, name) DO UPDATE SET value = excluded.value, public = 0, instance = excluded.instance",
        params![app, name, value, instance],
    )
}

/// Stores a public variable unless the name is reserved or already private.
/// Returns whether it was stored.
pub fn set_public(db: &Db, app: &str, name: &str, value: &str) -> DbResult<bool> {
    if is_reserved(name) {
        return Ok(false);
    }
    db.execute(
        "INSERT INTO env_vars (app, name, value, public, instance) VALUES (?, ?, ?, 1, NULL) \
         ON CONFLICT (app, name) DO UPDATE SET value = excluded.value WHERE env_vars.public = 1",
        params![app, name, value],
    )?;
    Ok(db.changes()? > 0)
}

/// Deletes a public variable; private or unknown names are left alone.
pub fn unset_public(db: &Db, app: &str, name: &str) -> DbResult<()> {
    db.execute(
        "DELETE FROM env_vars WHERE app = ? AND name = ? AND public = 1",
        params![app, name],
    )
}

const NAMES_REQUIRED: &str = "You must provide the list of environment variables, in JSON format";

/// Variable names from the repeated `name` query parameter, else from a JSON array of
/// strings in the body; empty when neither gives any.
fn requested_names(ctx: &Ctx) -> ApiResult<Vec<String>> {
    let from_query = ctx.req.query_all("name");
    if !from_query.is_empty() {
        return Ok(from_query);
    }
    if ctx.req.body.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    ctx.json_body(NAMES_REQUIRED)
}

/// `GET /apps/:app/env`
pub fn get(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let names = requested_names(ctx)?;
    let mut variables = list_masked(ctx.db()?, &app.name)?;
    if !names.is_empty() {
        variables.retain(|v| names.contains(&v.name));
    }
    audit::record(ctx, "get-env", &app.name, json!({}));
    Ok(Response::json(&variables))
}

/// `POST /apps/:app/env`
pub fn set(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let variables: BTreeMap<String, String> =
        ctx.json_body("You must provide the environment variables in a JSON object")?;
    if let Some(bad) = variables.keys().find(|name| !is_valid_name(name)) {
        return Err(ApiError::bad_request(format!(
            "Invalid environment variable name: {bad}"
        )));
    }
    // One commit for the variables, their log entries and the audit event: commits are
    // what a write costs.
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let mut stored = Vec::new();
        for (name, value) in &variables {
            if set_public(db, &app.name, name, value)? {
                stored.push((name, value));
            }
        }
        let messages: Vec<String> = stored
            .iter()
            .map(|(name, value)| format!("setting env {name} with value {value}"))
            .collect();
        logs::record_within(db, &app.name, &messages);
        let names: Vec<&String> = stored.iter().map(|(name, _)| *name).collect();
        audit::record(ctx, "set-env", &app.name, json!({"names": names}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// `DELETE /apps/:app/env`
pub fn unset(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let names = requested_names(ctx)?;
    if names.is_empty() {
        return Err(ApiError::bad_request(NAMES_REQUIRED));
    }
    ctx.db()?.transaction(|db| {
        names
            .iter()
            .try_for_each(|name| unset_public(db, &app.name, name))
    })?;
    audit::record(ctx, "unset-env", &app.name, json!({"names": names}));
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;
    use crate::runtime::schema;

    #[test]
    fn names() {
        for ok in ["A", "_x", "PORT_8080", "a1"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn public_writes_never_touch_private_or_reserved() {
        let db = NativeDb::memory();
        schema::migrate(&db, &[], "now").unwrap();
        set_private(&db, "a", "TSURU_APPNAME", "a", None).unwrap();
        set_private(&db, "a", "DB", "secret", Some("mydb")).unwrap();
        assert!(!set_public(&db, "a", "DB", "x").unwrap());
        assert!(!set_public(&db, "a", "TSURU_HOST", "x").unwrap());
        assert!(set_public(&db, "a", "PORT", "80").unwrap());
        assert!(set_public(&db, "a", "PORT", "8080").unwrap());
        unset_public(&db, "a", "DB").unwrap();
        unset_public(&db, "a", "TSURU_APPNAME").unwrap();
        let listed = list_masked(&db, "a").unwrap();
        let shown: Vec<(&str, &str, bool)> = listed
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str(), v.public))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("DB", PRIVATE_MASK, false),
                ("PORT", "8080", true),
                ("TSURU_APPNAME", PRIVATE_MASK, false)
            ]
        );
        assert_eq!(values(&db, "a").unwrap()["DB"], "secret");
    }
}
