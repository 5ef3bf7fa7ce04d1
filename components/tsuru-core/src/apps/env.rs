//! An app's environment variables (API.md 3.1 env routes, 4.1 `env_vars`): public
//! variables set by users, private ones set by the system or by service bindings. Each
//! write checks the app inside its transaction, so a variable never lands on an app
//! removed meanwhile, nor on a namesake created after it (API.md 8.1).

use crate::apps::logs;
use crate::apps::records::{load_for_with, Extra, WriteTarget, APP_COLUMN_COUNT};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult, Value};
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

/// Variables one statement writes (3 parameters each, well under SQLite's limit).
const WRITE_BATCH: usize = 300;

/// The most variables an app may hold, and the most bytes of their names and values:
/// an app's whole environment goes to the provisioner with every deploy and back with
/// every read, and one tenant's writes should not fill the database everyone shares.
pub const MAX_VARIABLES: usize = 1000;
pub const MAX_VARIABLE_BYTES: usize = 1024 * 1024;

fn too_many() -> ApiError {
    ApiError::bad_request(format!(
        "Too many environment variables: an app may hold at most {MAX_VARIABLES}, \
         of at most {MAX_VARIABLE_BYTES} bytes of names and values in all."
    ))
}

/// Bytes of a variable as the limit counts them.
fn size(name: &str, value: &str) -> usize {
    name.len() + value.len()
}

/// Whether app `a`'s variables other than those named by `names` (SQL parameters), with
/// a batch of `?5` variables of `?6` bytes, stay within the limits (`?7`, `?8`).
fn within_limits(names: &str) -> String {
    format!(
        "(SELECT COUNT(*) + ?5 <= ?7 AND TOTAL(length(CAST(e.name AS BLOB)) \
         + length(CAST(e.value AS BLOB))) + ?6 <= ?8 FROM env_vars e \
         WHERE e.app_id = a.id AND e.name NOT IN ({names}))"
    )
}

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

/// The app's variables as a JSON object of name to value, unmasked: what the
/// provisioner receives. A column to select with the app (`a`).
pub const VALUES_COLUMN: &str =
    ", (SELECT json_group_object(name, value) FROM env_vars WHERE app_id = a.id)";

/// Reads [`VALUES_COLUMN`].
pub fn values_from(row: &crate::runtime::db::Row, column: usize) -> BTreeMap<String, String> {
    serde_json::from_str(&row.text(column)).unwrap_or_default()
}

/// The complete variable map of app `app_id`, values unmasked.
pub fn values(db: &Db, app_id: i64) -> DbResult<BTreeMap<String, String>> {
    let rows = db.query(
        "SELECT name, value FROM env_vars WHERE app_id = ?",
        params![app_id],
    )?;
    Ok(rows.iter().map(|r| (r.text(0), r.text(1))).collect())
}

/// Stores private variables, replacing any variable of those names; `instance` tags the
/// variables a service binding set (they go with the binding).
pub fn set_private(
    db: &Db,
    app_id: i64,
    variables: &[(&str, &str)],
    instance: Option<i64>,
) -> DbResult<()> {
    let values: Vec<Value> = variables
        .iter()
        .flat_map(|(name, value)| {
            [
                Value::from(app_id),
                Value::from(*name),
                Value::from(*value),
                Value::from(false),
                Value::from(instance),
            ]
        })
        .collect();
    db.insert_rows(
        "INSERT INTO env_vars (app_id, name, value, public, instance_id) VALUES",
        5,
        &values,
        "ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value, public = 0, \
         instance_id = excluded.instance_id",
    )
}

/// Refuses (`400`, rolling back the caller's transaction) when app `app_id` holds more
/// than the limits allow: for writes whose variables come from elsewhere (a service
/// binding's), checked after they are written, in the same transaction.
pub fn check_limits(db: &Db, app_id: i64) -> ApiResult<()> {
    if batch_within_limits(db, app_id, &[])? {
        Ok(())
    } else {
        Err(too_many())
    }
}

/// Stores public variables in the app of `target`, whose insert checks it and the
/// limits, except reserved names and names that exist as private: `404`, `403`, `400`
/// past the limits, or the app's id and the names stored.
fn set_public(
    db: &Db,
    target: &WriteTarget,
    variables: &BTreeMap<String, String>,
) -> ApiResult<(i64, Vec<String>)> {
    let wanted: Vec<(&String, &String)> = variables
        .iter()
        .filter(|(name, _)| !is_reserved(name))
        .collect();
    let wanted_bytes: usize = wanted.iter().map(|(name, value)| size(name, value)).sum();
    if wanted.len() > MAX_VARIABLES || wanted_bytes > MAX_VARIABLE_BYTES {
        target.explain(db)?;
        return Err(too_many());
    }
    let (mut app_id, mut stored) = (None, Vec::new());
    for batch in wanted.chunks(WRITE_BATCH) {
        // (name, value) pairs after the target's four parameters and the limits' four.
        let rows: Vec<String> = (0..batch.len())
            .map(|i| format!("(?{}, ?{})", 9 + 2 * i, 10 + 2 * i))
            .collect();
        let names: Vec<String> = (0..batch.len())
            .map(|i| format!("?{}", 9 + 2 * i))
            .collect();
        let mut values = target.params();
        values.extend(limit_params(batch));
        for (name, value) in batch {
            values.extend([Value::from(name.as_str()), Value::from(value.as_str())]);
        }
        let written = db.query(
            &format!(
                "INSERT INTO env_vars (app_id, name, value, public, instance_id) \
                 SELECT a.id, v.column1, v.column2, 1, NULL FROM apps a, (VALUES {}) v \
                 WHERE {} AND {} \
                 ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value \
                 WHERE env_vars.public = 1 RETURNING app_id, name",
                rows.join(", "),
                WriteTarget::CONDITION,
                within_limits(&names.join(", ")),
            ),
            &values,
        )?;
        if written.is_empty() {
            // The app, the access or the limits refused the whole batch, or every name
            // in it is private.
            let app = target.explain(db)?;
            if !batch_within_limits(db, app.id, batch)? {
                return Err(too_many());
            }
            app_id = Some(app.id);
        }
        for row in &written {
            app_id = Some(row.int(0));
            stored.push(row.text(1));
        }
    }
    let app_id = match app_id {
        Some(id) => id,
        None => target.explain(db)?.id,
    };
    stored.sort();
    Ok((app_id, stored))
}

/// [`within_limits`] for a batch that wrote nothing, to tell the limits from private
/// names. Its parameters are numbered as in the write: `?1` the app, `?2` to `?4` unused.
fn batch_within_limits(db: &Db, app_id: i64, batch: &[(&String, &String)]) -> ApiResult<bool> {
    let names: Vec<String> = (0..batch.len()).map(|i| format!("?{}", 9 + i)).collect();
    let mut values = vec![Value::from(app_id), Value::Null, Value::Null, Value::Null];
    values.extend(limit_params(batch));
    values.extend(batch.iter().map(|(name, _)| Value::from(name.as_str())));
    let within = db.query(
        &format!(
            "SELECT {} FROM (SELECT ?1 AS id) a",
            within_limits(&names.join(", "))
        ),
        &values,
    )?;
    Ok(within.first().is_some_and(|row| row.int(0) != 0))
}

/// `?5` to `?8` of [`within_limits`] for `batch`.
fn limit_params(batch: &[(&String, &String)]) -> [Value; 4] {
    let bytes: usize = batch.iter().map(|(name, value)| size(name, value)).sum();
    [
        Value::from(batch.len() as i64),
        Value::from(bytes as i64),
        Value::from(MAX_VARIABLES as i64),
        Value::from(MAX_VARIABLE_BYTES as i64),
    ]
}

const NAMES_REQUIRED: &str = "You must provide the list of environment variables, in JSON format";

/// Variable names from the repeated `name` query parameter, else from a JSON array of
/// strings in the body; empty when neither gives any. An absent or empty body, or the
/// JSON `null` the 2014 `tsuru env-get` sends, gives none (API.md 3.1).
fn requested_names(ctx: &Ctx) -> ApiResult<Vec<String>> {
    let from_query = ctx.req.query_all("name");
    if !from_query.is_empty() {
        return Ok(from_query);
    }
    if ctx.req.body.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    let names: Option<Vec<String>> = ctx.json_body(NAMES_REQUIRED)?;
    Ok(names.unwrap_or_default())
}

/// `GET /apps/:app/env`: the app, the access check and the variables, private values
/// masked, in one statement.
pub fn get(ctx: &mut Ctx) -> ApiResult<Response> {
    let (app, row) = load_for_with(
        ctx.db()?,
        ctx.param("app"),
        ctx.user()?,
        ctx.config.admin_team().as_deref(),
        Extra {
            columns: ", (SELECT json_group_array(json_array(name, \
                      CASE WHEN public THEN value END, public)) FROM env_vars WHERE app_id = a.id)",
            params: Vec::new(),
        },
    )?;
    let names = requested_names(ctx)?;
    let stored: Vec<(String, Option<String>, i64)> =
        serde_json::from_str(&row.text(APP_COLUMN_COUNT)).unwrap_or_default();
    let mut variables: Vec<EnvVar> = stored
        .into_iter()
        .filter(|(name, _, _)| names.is_empty() || names.contains(name))
        .map(|(name, value, public)| EnvVar {
            name,
            value: value.unwrap_or_else(|| PRIVATE_MASK.to_string()),
            public: public != 0,
        })
        .collect();
    variables.sort_by(|a, b| a.name.cmp(&b.name));
    audit::record(ctx, "get-env", &app.name, json!({}));
    Ok(Response::json(&variables))
}

/// `POST /apps/:app/env`: the variables, their log entries and the audit event in one
/// transaction (one commit: commits are what a write costs).
pub fn set(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: ApiResult<BTreeMap<String, String>> =
        ctx.json_body("You must provide the environment variables in a JSON object");
    let retention = ctx.config.log_retention()?;
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    let target = WriteTarget::new(ctx.param("app"), user, admin_team.as_deref());
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let variables = match body.and_then(valid_names) {
            Ok(variables) => variables,
            Err(e) => {
                target.explain(db)?;
                return Err(e);
            }
        };
        let (app_id, stored) = set_public(db, &target, &variables)?;
        let messages: Vec<String> = stored
            .iter()
            .map(|name| format!("setting env {name} with value {}", variables[name]))
            .collect();
        logs::record(db, app_id, &messages, retention);
        audit::record_in(
            db,
            &user.email,
            "set-env",
            target.name(),
            json!({"names": stored}),
        );
        Ok(())
    })?;
    Ok(Response::empty())
}

/// `400 Invalid environment variable name: <name>` for the first name that is not one.
fn valid_names(variables: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    match variables.keys().find(|name| !is_valid_name(name)) {
        Some(bad) => Err(ApiError::bad_request(format!(
            "Invalid environment variable name: {bad}"
        ))),
        None => Ok(variables),
    }
}

/// `DELETE /apps/:app/env`
pub fn unset(ctx: &mut Ctx) -> ApiResult<Response> {
    let names = requested_names(ctx);
    let admin_team = ctx.config.admin_team();
    let user = ctx.user()?;
    let target = WriteTarget::new(ctx.param("app"), user, admin_team.as_deref());
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let names = match names {
            Ok(names) if !names.is_empty() => names,
            wrong => {
                target.explain(db)?;
                return Err(wrong
                    .err()
                    .unwrap_or_else(|| ApiError::bad_request(NAMES_REQUIRED)));
            }
        };
        let mut removed_any = false;
        for batch in names.chunks(WRITE_BATCH) {
            // The names after the target's four parameters.
            let marks: Vec<String> = (0..batch.len()).map(|i| format!("?{}", 5 + i)).collect();
            let mut values = target.params();
            values.extend(batch.iter().map(Value::from));
            let removed = db.query(
                &format!(
                    "DELETE FROM env_vars WHERE public = 1 AND name IN ({}) AND app_id = \
                     (SELECT a.id FROM apps a WHERE {}) RETURNING app_id",
                    marks.join(", "),
                    WriteTarget::CONDITION
                ),
                &values,
            )?;
            removed_any |= !removed.is_empty();
        }
        if !removed_any {
            target.explain(db)?;
        }
        audit::record_in(
            db,
            &user.email,
            "unset-env",
            target.name(),
            json!({"names": names}),
        );
        Ok(())
    })?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::caller::User;
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
        let db = schema::test_db_with_apps(&[(1, "a")]);
        set_private(&db, 1, &[("TSURU_APPNAME", "a"), ("DB", "secret")], None).unwrap();
        let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let checked = WriteTarget::for_app_token("a", None);
        let stored = set_public(
            &db,
            &checked,
            &vars(&[("DB", "x"), ("TSURU_HOST", "x"), ("PORT", "80")]),
        )
        .unwrap();
        assert_eq!(stored, (1, vec!["PORT".to_string()]));
        assert_eq!(
            set_public(&db, &checked, &vars(&[("PORT", "8080")])).unwrap(),
            (1, vec!["PORT".to_string()])
        );
        let all = values(&db, 1).unwrap();
        assert_eq!(all["DB"], "secret");
        assert_eq!(all["PORT"], "8080");
        assert!(!all.contains_key("TSURU_HOST"));
    }

    fn numbered(from: usize, to: usize, value: &str) -> BTreeMap<String, String> {
        (from..to)
            .map(|i| (format!("V{i}"), value.to_string()))
            .collect()
    }

    #[test]
    fn an_app_holds_at_most_the_limits() {
        let db = schema::test_db_with_apps(&[(1, "a")]);
        set_private(&db, 1, &[("TSURU_APPNAME", "a")], None).unwrap();
        let target = WriteTarget::for_app_token("a", None);
        let refused = too_many().message;
        // One private variable and 999 public ones fill the app, in batches.
        let (_, stored) = set_public(&db, &target, &numbered(0, 999, "x")).unwrap();
        assert_eq!(stored.len(), 999);
        let one_more = set_public(&db, &target, &numbered(999, 1000, "x"));
        assert_eq!(one_more.unwrap_err().message, refused);
        // Replacing variables adds none, and a private name is not written.
        assert_eq!(
            set_public(&db, &target, &numbered(0, 999, "y"))
                .unwrap()
                .1
                .len(),
            999
        );
        let private: BTreeMap<String, String> = [("TSURU_APPNAME".into(), "b".into())].into();
        assert!(set_public(&db, &target, &private).unwrap().1.is_empty());
        assert_eq!(values(&db, 1).unwrap().len(), 1000);
        // More than the limit in one request is refused before it is written, after
        // the app's own check.
        let missing = set_public(
            &db,
            &WriteTarget::for_app_token("b", None),
            &numbered(0, 1001, "x"),
        );
        assert_eq!(missing.unwrap_err().status, 404);
        let db = schema::test_db_with_apps(&[(1, "a")]);
        let too_many_at_once = set_public(&db, &target, &numbered(0, 1001, "x"));
        assert_eq!(too_many_at_once.unwrap_err().message, refused);
        assert!(values(&db, 1).unwrap().is_empty());
        // Bytes: names and values together, whatever the count.
        let half = "x".repeat(MAX_VARIABLE_BYTES / 2 - 2);
        assert!(set_public(&db, &target, &numbered(0, 1, &half)).is_ok());
        assert!(set_public(&db, &target, &numbered(1, 2, &half)).is_ok());
        assert_eq!(
            set_public(&db, &target, &numbered(2, 3, ""))
                .unwrap_err()
                .message,
            refused
        );
        assert!(set_public(&db, &target, &numbered(1, 2, "smaller")).is_ok());
        assert!(set_public(&db, &target, &numbered(2, 3, "")).is_ok());
    }

    #[test]
    fn a_public_write_checks_the_app_and_the_callers_access_itself() {
        let db = schema::test_db_with_apps(&[(1, "a")]);
        db.execute(
            "INSERT INTO users (id, email, password_hash, created_at) \
             VALUES (7, 'eve@x.com', 'h', 'now')",
            &[],
        )
        .unwrap();
        let eve = User {
            id: 7,
            email: "eve@x.com".into(),
            teams: Vec::new(),
            is_admin: false,
        };
        let port: BTreeMap<String, String> = [("PORT".to_string(), "80".to_string())].into();
        let stranger = set_public(&db, &WriteTarget::new("a", &eve, None), &port);
        assert_eq!(stranger.unwrap_err().status, 403);
        let missing = set_public(&db, &WriteTarget::new("b", &eve, None), &port);
        assert_eq!(missing.unwrap_err().status, 404);
        assert!(values(&db, 1).unwrap().is_empty());
        db.execute(
            "INSERT INTO teams (id, name, created_at) VALUES (3, 't', 'now')",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO team_members (team_id, user_id) VALUES (3, 7)",
            &[],
        )
        .unwrap();
        db.execute("INSERT INTO app_teams (app_id, team_id) VALUES (1, 3)", &[])
            .unwrap();
        let member = set_public(&db, &WriteTarget::new("a", &eve, None), &port);
        assert_eq!(member.unwrap(), (1, vec!["PORT".to_string()]));
    }
}
