//! The provisioner (API.md 5.3): the HTTP protocol when `provisioner_url` is set, else
//! the built-in record-only provisioner. Failures carry API.md's `<reason>`.

use crate::runtime::context::Ctx;
use crate::runtime::outbound::{join_url, OpenReply, OutboundRequest, OutboundResponse};
use crate::runtime::request::encode_segment;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const INVALID_REPLY: &str = "invalid provisioner response";

/// Every state a unit may have (API.md 3.1); anything else a provisioner reports is `down`.
const UNIT_STATES: [&str; 5] = ["building", "started", "unreachable", "down", "error"];

/// A unit as the provisioner reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    pub name: String,
    pub ip: String,
    pub state: String,
}

/// The reply to provision: the app's public address and its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub ip: String,
    pub units: Vec<UnitStatus>,
}

/// The request of one call; `None` means the built-in provisioner handles it (no URL set).
fn request(ctx: &Ctx, method: &str, path: &str, body: Option<Value>) -> Option<OutboundRequest> {
    let base = ctx.config.provisioner_url()?;
    let mut request =
        OutboundRequest::new(method, join_url(&base, path)).header("accept", "application/json");
    if let Some(token) = ctx.config.provisioner_token() {
        request = request.header("authorization", &format!("bearer {token}"));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Some(request)
}

/// Reports a transport failure of a provisioner call on stderr and passes it on.
fn reported<'a>(method: &'a str, path: &'a str) -> impl Fn(String) -> String + 'a {
    move |transport| {
        eprintln!("provisioner {method} {path}: {transport}");
        transport
    }
}

/// Sends one call; `Ok(None)` means the built-in provisioner handles it (no URL set),
/// `Err` a transport failure.
fn send(
    ctx: &Ctx,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Option<OutboundResponse>, String> {
    let Some(request) = request(ctx, method, path, body) else {
        return Ok(None);
    };
    let response = ctx.send(&request).map_err(reported(method, path))?;
    Ok(Some(response))
}

/// Opens a call whose output is streamed (deploy, run): a 2xx reply with its body
/// unread, or the failure's reason; `Ok(None)` for the built-in provisioner.
fn open(ctx: &Ctx, path: &str, body: Value) -> Result<Option<OpenReply>, String> {
    let Some(request) = request(ctx, "POST", path, Some(body)) else {
        return Ok(None);
    };
    let reply = ctx.open(&request).map_err(reported("POST", path))?;
    if reply.is_success() {
        return Ok(Some(reply));
    }
    Err(reply.read_all()?.reason())
}

/// [`send`], where any 2xx succeeds with its body as JSON (`null` when it is not:
/// only provision and add units read the reply, the others accept any body).
fn call(ctx: &Ctx, method: &str, path: &str, body: Option<Value>) -> Result<Option<Value>, String> {
    match send(ctx, method, path, body)? {
        None => Ok(None),
        Some(response) if response.is_success() => Ok(Some(
            serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        )),
        Some(response) => Err(response.reason()),
    }
}

/// Whether the built-in record-only provisioner is in use (`provisioner_url` empty): it
/// answers at once, with no call to make.
pub fn is_builtin(ctx: &Ctx) -> bool {
    ctx.config.provisioner_url().is_none()
}

/// What the built-in provisioner reports for new units.
pub fn started(units: &[String]) -> Vec<UnitStatus> {
    units
        .iter()
        .map(|name| UnitStatus {
            name: name.clone(),
            ip: String::new(),
            state: "started".into(),
        })
        .collect()
}

pub fn provision(
    ctx: &Ctx,
    app: &str,
    platform: &str,
    units: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Provisioned, String> {
    let body = json!({"name": app, "platform": platform, "units": units, "env": env});
    match call(ctx, "POST", "/apps", Some(body))? {
        None => Ok(Provisioned {
            ip: String::new(),
            units: started(units),
        }),
        Some(reply) => {
            let ip = reply
                .get("ip")
                .and_then(Value::as_str)
                .ok_or(INVALID_REPLY)?;
            Ok(Provisioned {
                ip: ip.to_string(),
                units: parse_units(&reply, units)?,
            })
        }
    }
}

/// Any 2xx, or 404: the app is already gone.
pub fn destroy(ctx: &Ctx, app: &str) -> Result<(), String> {
    match send(ctx, "DELETE", &app_path(app, ""), None)? {
        Some(response) if !response.is_success() && response.status != 404 => {
            Err(response.reason())
        }
        _ => Ok(()),
    }
}

pub fn add_units(
    ctx: &Ctx,
    app: &str,
    units: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Vec<UnitStatus>, String> {
    let body = json!({"units": units, "env": env});
    match call(ctx, "POST", &app_path(app, "/units"), Some(body))? {
        None => Ok(started(units)),
        Some(reply) => parse_units(&reply, units),
    }
}

pub fn remove_unit(ctx: &Ctx, app: &str, number: i64) -> Result<(), String> {
    call(
        ctx,
        "DELETE",
        &app_path(app, &format!("/units/{number}")),
        None,
    )
    .map(|_| ())
}

pub fn restart(ctx: &Ctx, app: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    let body = json!({"env": env});
    call(ctx, "POST", &app_path(app, "/restart"), Some(body)).map(|_| ())
}

pub fn swap(ctx: &Ctx, app1: &str, app2: &str) -> Result<(), String> {
    call(
        ctx,
        "POST",
        "/swap",
        Some(json!({"app1": app1, "app2": app2})),
    )
    .map(|_| ())
}

/// Deploys `version` (9.6): the provisioner's output goes to `output` as it arrives.
/// The built-in provisioner only records it. `Err` is the failure's reason, also when
/// the output breaks off midway.
pub fn deploy(
    ctx: &Ctx,
    app: &str,
    version: &str,
    commit: &str,
    env: &BTreeMap<String, String>,
    output: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<(), String> {
    let body = json!({"version": version, "commit": commit, "env": env});
    match open(ctx, &app_path(app, "/deploy"), body)? {
        Some(reply) => reply.pump(output),
        None if output(format!("deploy of {version} recorded\n").as_bytes()) => Ok(()),
        None => Err("the client went away".into()),
    }
}

/// Runs `command` in the app's units, or in one when `once` (9.6): the 2xx reply whose
/// body is the output; `Ok(None)` when no provisioner is set (the built-in one cannot).
pub fn run(
    ctx: &Ctx,
    app: &str,
    command: &str,
    once: bool,
    env: &BTreeMap<String, String>,
) -> Result<Option<OpenReply>, String> {
    let body = json!({"command": command, "once": once, "env": env});
    open(ctx, &app_path(app, "/run"), body)
}

/// Starts the app's units (9.6); the provisioner's output (nothing for the built-in one).
pub fn start(ctx: &Ctx, app: &str, env: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let body = json!({"env": env});
    match send(ctx, "POST", &app_path(app, "/start"), Some(body))? {
        None => Ok(Vec::new()),
        Some(response) if response.is_success() => Ok(response.body),
        Some(response) => Err(response.reason()),
    }
}

fn app_path(app: &str, rest: &str) -> String {
    format!("/apps/{}{rest}", encode_segment(app))
}

/// Validates a reply's `units`: exactly the requested names, each once, with string
/// `ip` and `state`. Returned in the requested order, unknown states as `down`.
fn parse_units(reply: &Value, requested: &[String]) -> Result<Vec<UnitStatus>, String> {
    let listed = reply
        .get("units")
        .and_then(Value::as_array)
        .ok_or(INVALID_REPLY)?;
    let mut by_name = BTreeMap::new();
    for unit in listed {
        let field = |key: &str| unit.get(key).and_then(Value::as_str).map(str::to_string);
        let (Some(name), Some(ip), Some(state)) = (field("name"), field("ip"), field("state"))
        else {
            return Err(INVALID_REPLY.into());
        };
        let state = if UNIT_STATES.contains(&state.as_str()) {
            state
        } else {
            "down".into()
        };
        if by_name
            .insert(name.clone(), UnitStatus { name, ip, state })
            .is_some()
        {
            return Err(INVALID_REPLY.into());
        }
    }
    if by_name.len() != requested.len() {
        return Err(INVALID_REPLY.into());
    }
    requested
        .iter()
        .map(|name| {
            by_name
                .remove(name)
                .ok_or_else(|| INVALID_REPLY.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn units_must_match_the_request() {
        let requested = names(&["a/1", "a/2"]);
        let ok = json!({"units": [
            {"name": "a/2", "ip": "10.0.0.2", "state": "building"},
            {"name": "a/1", "ip": "10.0.0.1", "state": "weird"}
        ]});
        let units = parse_units(&ok, &requested).unwrap();
        assert_eq!(units[0].name, "a/1");
        assert_eq!(units[0].state, "down");
        assert_eq!(units[1].ip, "10.0.0.2");

        let bad = [
            json!({}),
            json!({"units": [{"name": "a/1", "ip": "x", "state": "started"}]}),
            json!({"units": [
                {"name": "a/1", "ip": "x", "state": "started"},
                {"name": "a/3", "ip": "x", "state": "started"}
            ]}),
            json!({"units": [
                {"name": "a/1", "ip": "x", "state": "started"},
                {"name": "a/1", "ip": "x", "state": "started"}
            ]}),
            json!({"units": [
                {"name": "a/1", "ip": 5, "state": "started"},
                {"name": "a/2", "ip": "x", "state": "started"}
            ]}),
        ];
        for reply in bad {
            assert_eq!(
                parse_units(&reply, &requested).unwrap_err(),
                INVALID_REPLY,
                "{reply}"
            );
        }
    }
}
