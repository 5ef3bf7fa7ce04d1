//! The service API protocol (API.md 5.1): the calls this API makes to a service's
//! `production` endpoint to create, bind, unbind, inspect and destroy its instances.
//! The service's credentials travel only in the `Authorization` header: they are never
//! put in a message, a log line or a response.

use crate::params;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::outbound::{join_url, OutboundRequest, OutboundResponse};
use crate::runtime::request::{encode_form, encode_segment};
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Variables a service returns from a bind, name -> value.
pub type Variables = BTreeMap<String, String>;

/// How to reach one service's API.
pub struct ServiceApi {
    service: String,
    base_url: String,
    authorization: Option<String>,
}

/// Why a call failed: the upstream answered with an unexpected status, or never answered.
enum CallError {
    Status(OutboundResponse),
    Transport(String),
}

impl CallError {
    /// API.md 1.5's `<reason>`: the reply's text, or the transport failure's description.
    fn reason(&self) -> String {
        match self {
            CallError::Status(response) => reply_text(&response.body),
            CallError::Transport(description) => description.clone(),
        }
    }
}

/// Most characters of a service's reply an error shows (API.md 8.3).
const REPLY_TEXT_CHARS: usize = 300;

/// A service's reply as error text: control characters removed, trimmed, at most 300
/// characters. A tenant's service must not put another's data, or escape sequences,
/// in front of the caller at length.
fn reply_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    clean.trim().chars().take(REPLY_TEXT_CHARS).collect()
}

/// `http://` is prefixed when the endpoint has no scheme; `https://` is kept.
fn base_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim();
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Whether `endpoint` is a URL this API may call (API.md 8.3): after the `http://` of
/// [`base_url`], an absolute `http` or `https` URL with a host, optionally a port and a
/// path, and no user info, query or fragment; its host matches one of `hosts` (`*.`
/// matches one or more labels) unless `hosts` is empty. `Err` is the reason.
pub fn check_endpoint(endpoint: &str, hosts: &[String]) -> Result<(), &'static str> {
    let url = base_url(endpoint);
    let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("the scheme must be http or https");
    }
    if rest.contains('?') {
        return Err("a query is not allowed");
    }
    if rest.contains('#') {
        return Err("a fragment is not allowed");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("user info is not allowed");
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(literal) => {
            let (address, after) = literal.split_once(']').ok_or("invalid host")?;
            if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err("invalid host");
            }
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or("invalid host")?),
            };
            (&authority[..address.len() + 2], port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err("no host");
            }
            let valid = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !valid {
                return Err("invalid host");
            }
            (host, port)
        }
    };
    if let Some(port) = port {
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().map_or(true, |p| p == 0)
        {
            return Err("invalid port");
        }
    }
    let valid_path = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b));
    if !valid_path {
        return Err("invalid path");
    }
    if !hosts.is_empty() && !hosts.iter().any(|pattern| host_matches(pattern, host)) {
        return Err("host not allowed");
    }
    Ok(())
}

/// `db.internal` matches `*.internal` and `db.internal`, not `internal` or `xdb.internal`.
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
        None => host == pattern,
    }
}

fn basic_authorization(username: &str, password: &str) -> Option<String> {
    if username.is_empty() {
        return None;
    }
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    Some(format!("Basic {credentials}"))
}

/// `{"Address":"10.0.0.1"}` from `[{"label":"Address","value":"10.0.0.1"}]`; `None`
/// when the body has another shape.
fn info_object(body: &[u8]) -> Option<Value> {
    let items: Vec<BTreeMap<String, String>> = serde_json::from_slice(body).ok()?;
    let mut info = Map::new();
    for item in items {
        info.insert(
            item.get("label")?.clone(),
            Value::String(item.get("value")?.clone()),
        );
    }
    Some(Value::Object(info))
}

/// A plan a service offers (API.md 9.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: String,
    pub description: String,
}

/// Plans from a reply: a JSON array of objects with a string `name` (a `description`
/// that is not a string reads as empty).
fn plans_from(body: &[u8]) -> Option<Vec<Plan>> {
    let items: Vec<Map<String, Value>> = serde_json::from_slice(body).ok()?;
    items
        .into_iter()
        .map(|item| {
            Some(Plan {
                name: item.get("name")?.as_str()?.to_string(),
                description: item
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

/// A bind reply's variables: a JSON object of strings; an empty body means none.
fn bind_variables(body: &[u8]) -> Option<Variables> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Variables::new());
    }
    serde_json::from_slice(body).ok()
}

impl ServiceApi {
    /// The API of the service with id `service`; `500 Unknown endpoint: production` when
    /// the service has no production endpoint (only possible for data made outside the API).
    pub fn load(db: &Db, service: i64) -> ApiResult<ServiceApi> {
        let row = db.query_opt(
            "SELECT s.name, s.username, s.password, e.url FROM services s \
             JOIN service_endpoints e ON e.service_id = s.id AND e.env = 'production' \
             WHERE s.id = ? AND e.url <> ''",
            params![service],
        )?;
        let row = row.ok_or_else(|| ApiError::new(500, "Unknown endpoint: production"))?;
        Ok(ServiceApi {
            service: row.text(0),
            base_url: base_url(&row.text(3)),
            authorization: basic_authorization(&row.text(1), &row.text(2)),
        })
    }

    fn call(
        &self,
        ctx: &Ctx,
        method: &str,
        path: &str,
        form: Option<String>,
    ) -> Result<OutboundResponse, CallError> {
        let mut request = OutboundRequest::new(method, join_url(&self.base_url, path))
            .header("accept", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(form) = form {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.into_bytes());
        }
        let response = ctx.send(&request).map_err(CallError::Transport)?;
        if response.status < 300 {
            Ok(response)
        } else {
            Err(CallError::Status(response))
        }
    }

    /// Reports a failed call whose failure the route ignores (API.md 5.1).
    fn log_failure(&self, call: &str, instance: &str, error: &CallError) {
        eprintln!(
            "service {} {call} of instance {instance} failed: {}",
            self.service,
            error.reason()
        );
    }

    /// `POST /resources`; the error is the route's 502.
    pub fn create(&self, ctx: &Ctx, instance: &str) -> ApiResult<()> {
        let form = encode_form(&[("name", instance)]);
        self.call(ctx, "POST", "/resources", Some(form))
            .map(|_| ())
            .map_err(|e| {
                ApiError::bad_gateway(format!(
                    "Failed to create the instance {instance}: {}",
                    e.reason()
                ))
            })
    }

    /// `DELETE /resources/<instance>`; a failure is logged and ignored.
    pub fn destroy(&self, ctx: &Ctx, instance: &str) {
        let path = format!("/resources/{}", encode_segment(instance));
        if let Err(e) = self.call(ctx, "DELETE", &path, None) {
            self.log_failure("destroy", instance, &e);
        }
    }

    /// `POST /resources/<instance>` for one unit; the variables the service returned, or
    /// the route's 412 or 502.
    pub fn bind(
        &self,
        ctx: &Ctx,
        instance: &str,
        app_ip: &str,
        unit_ip: &str,
    ) -> ApiResult<Variables> {
        let path = format!("/resources/{}", encode_segment(instance));
        let form = encode_form(&[("app-host", app_ip), ("unit-host", unit_ip)]);
        let failed = |reason: &str| {
            ApiError::bad_gateway(format!(
                "Failed to bind instance {instance} to the unit {unit_ip}: {reason}"
            ))
        };
        match self.call(ctx, "POST", &path, Some(form)) {
            Ok(response) => {
                bind_variables(&response.body).ok_or_else(|| failed("invalid response"))
            }
            Err(CallError::Status(response)) if response.status == 412 => {
                Err(ApiError::precondition_failed(
                    "You cannot bind any app to this service instance because it is not ready yet.",
                ))
            }
            Err(e @ CallError::Status(_)) => Err(failed(&e.reason())),
            Err(e @ CallError::Transport(_)) => {
                self.log_failure("bind", instance, &e);
                Err(ApiError::bad_gateway(format!("{instance} api is down.")))
            }
        }
    }

    /// Binds a unit for a caller that ignores the outcome (rollbacks, new units).
    pub fn bind_ignoring_failure(&self, ctx: &Ctx, instance: &str, app_ip: &str, unit_ip: &str) {
        if let Err(e) = self.bind(ctx, instance, app_ip, unit_ip) {
            eprintln!(
                "service {} bind of instance {instance} failed: {}",
                self.service, e.message
            );
        }
    }

    /// `DELETE /resources/<instance>/hostname/<unit ip>`; the error is the unbind route's 502.
    pub fn unbind(&self, ctx: &Ctx, instance: &str, unit_ip: &str) -> ApiResult<()> {
        let path = format!(
            "/resources/{}/hostname/{}",
            encode_segment(instance),
            encode_segment(unit_ip)
        );
        self.call(ctx, "DELETE", &path, None)
            .map(|_| ())
            .map_err(|e| {
                ApiError::bad_gateway(format!("Failed to unbind (\"{path}\"): {}", e.reason()))
            })
    }

    /// Unbinds a unit for a caller that ignores the outcome (rollbacks, app removal).
    pub fn unbind_ignoring_failure(&self, ctx: &Ctx, instance: &str, unit_ip: &str) {
        if let Err(e) = self.unbind(ctx, instance, unit_ip) {
            eprintln!(
                "service {} unbind of instance {instance} failed: {}",
                self.service, e.message
            );
        }
    }

    /// `GET /resources/<instance>/status`: `pending`, `up` or `down`, or the route's 502.
    pub fn status(&self, ctx: &Ctx, instance: &str) -> ApiResult<&'static str> {
        let path = format!("/resources/{}/status", encode_segment(instance));
        let reason = match self.call(ctx, "GET", &path, None) {
            Ok(response) if response.status == 202 => return Ok("pending"),
            Ok(response) if response.status == 204 => return Ok("up"),
            Err(CallError::Status(response)) if response.status == 500 => return Ok("down"),
            Ok(response) => CallError::Status(response).reason(),
            Err(e) => e.reason(),
        };
        Err(ApiError::bad_gateway(format!(
            "Could not retrieve status of service instance, error: Failed to get status of instance {instance}: {reason}"
        )))
    }

    /// `GET /resources/plans` (API.md 9.3): `{"name","description"}` objects sorted by
    /// name; a 404 means none; anything else that is not a JSON array of objects with a
    /// string `name` is the route's 502.
    pub fn plans(&self, ctx: &Ctx) -> ApiResult<Vec<Plan>> {
        let failed = |reason: String| {
            ApiError::bad_gateway(format!("Failed to get plans of {}: {reason}", self.service))
        };
        let body = match self.call(ctx, "GET", "/resources/plans", None) {
            Ok(response) => response.body,
            Err(CallError::Status(response)) if response.status == 404 => return Ok(Vec::new()),
            Err(e) => return Err(failed(e.reason())),
        };
        let mut plans = plans_from(&body).ok_or_else(|| failed("invalid response".into()))?;
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plans)
    }

    /// `GET /resources/<instance>`: the labelled values as an object; `{}` for another
    /// status or shape, `null` when the service cannot be reached.
    pub fn info(&self, ctx: &Ctx, instance: &str) -> Value {
        let path = format!("/resources/{}", encode_segment(instance));
        match self.call(ctx, "GET", &path, None) {
            Ok(response) if response.status == 200 => {
                info_object(&response.body).unwrap_or_else(|| Value::Object(Map::new()))
            }
            Ok(_) | Err(CallError::Status(_)) => Value::Object(Map::new()),
            Err(e @ CallError::Transport(_)) => {
                self.log_failure("info", instance, &e);
                Value::Null
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_only_when_missing() {
        assert_eq!(
            base_url("mysql.example.com:8080"),
            "http://mysql.example.com:8080"
        );
        assert_eq!(
            base_url("https://mysql.example.com/"),
            "https://mysql.example.com/"
        );
        assert_eq!(
            join_url(&base_url("https://m.example.com/"), "/resources"),
            "https://m.example.com/resources"
        );
    }

    #[test]
    fn basic_auth_only_with_a_username() {
        assert_eq!(basic_authorization("", "secret"), None);
        assert_eq!(
            basic_authorization("tsuru", "s3cret").as_deref(),
            Some("Basic dHN1cnU6czNjcmV0")
        );
        assert_eq!(
            basic_authorization("tsuru", "").as_deref(),
            Some("Basic dHN1cnU6")
        );
    }

    #[test]
    fn info_replies_become_objects() {
        let body = br#"[{"label":"Address","value":"10.0.0.1"},{"label":"Port","value":"3306"}]"#;
        assert_eq!(
            info_object(body),
            Some(serde_json::json!({"Address":"10.0.0.1","Port":"3306"}))
        );
        assert_eq!(info_object(b"[]"), Some(serde_json::json!({})));
        assert_eq!(info_object(b"{\"a\":1}"), None);
        assert_eq!(info_object(b"[{\"label\":\"x\"}]"), None);
        assert_eq!(info_object(b"garbage"), None);
    }

    #[test]
    fn bind_replies_must_be_objects_of_strings() {
        assert_eq!(bind_variables(b""), Some(Variables::new()));
        assert_eq!(bind_variables(b" \n"), Some(Variables::new()));
        let vars = bind_variables(br#"{"DATABASE_HOST":"localhost"}"#).unwrap();
        assert_eq!(
            vars.get("DATABASE_HOST").map(String::as_str),
            Some("localhost")
        );
        assert_eq!(bind_variables(br#"{"PORT":3306}"#), None);
        assert_eq!(bind_variables(b"[1]"), None);
        assert_eq!(bind_variables(b"{not json"), None);
    }

    #[test]
    fn endpoints_are_plain_http_urls_on_allowed_hosts() {
        for ok in [
            "localhost:8080",
            "someservice.com",
            "https://mysql-api.example.com:8443/api/v1",
            "http://10.0.0.1/",
            "http://[::1]:8080/x",
        ] {
            assert_eq!(check_endpoint(ok, &[]), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            (
                "http://127.0.0.1:9/internal/secret?",
                "a query is not allowed",
            ),
            ("http://h/#frag", "a fragment is not allowed"),
            ("http://user:pw@h", "user info is not allowed"),
            ("ftp://h", "the scheme must be http or https"),
            ("/path-only", "no host"),
            ("http://", "no host"),
            ("http://h:0", "invalid port"),
            ("http://h:99999", "invalid port"),
            ("http://h/a b", "invalid path"),
            ("http://h^x", "invalid host"),
        ] {
            assert_eq!(check_endpoint(bad, &[]), Err(reason), "{bad}");
        }
        let hosts = vec!["*.internal".to_string(), "127.0.0.1".to_string()];
        assert_eq!(check_endpoint("http://db.internal:8080", &hosts), Ok(()));
        assert_eq!(check_endpoint("http://a.db.INTERNAL", &hosts), Ok(()));
        assert_eq!(check_endpoint("127.0.0.1:3000", &hosts), Ok(()));
        for bad in ["http://internal", "http://notinternal", "localhost:8080"] {
            assert_eq!(
                check_endpoint(bad, &hosts),
                Err("host not allowed"),
                "{bad}"
            );
        }
    }

    #[test]
    fn reply_text_is_short_and_clean() {
        let body = format!("  {}\u{1b}[31m\r\n\tred\u{7}  ", "é".repeat(400));
        let text = reply_text(body.as_bytes());
        assert_eq!(text.chars().count(), 300);
        assert!(!text.chars().any(char::is_control));
        assert_eq!(reply_text(b" \x1b[2Jboom\r\n "), "[2Jboom");
    }
}
