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
    /// API.md 1.5's `<reason>`: the trimmed body, or the transport failure's description.
    fn reason(&self) -> String {
        match self {
            CallError::Status(response) => response.reason(),
            CallError::Transport(description) => description.clone(),
        }
    }
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

/// A bind reply's variables: a JSON object of strings; an empty body means none.
fn bind_variables(body: &[u8]) -> Option<Variables> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Variables::new());
    }
    serde_json::from_slice(body).ok()
}

impl ServiceApi {
    /// The API of service `service`; `500 Unknown endpoint: production` when the service
    /// has no production endpoint (only possible for data made outside the API).
    pub fn load(db: &Db, service: &str) -> ApiResult<ServiceApi> {
        let row = db.query_opt(
            "SELECT s.username, s.password, e.url FROM services s \
             JOIN service_endpoints e ON e.service = s.id AND e.env = 'production' \
             WHERE s.id = ? AND e.url <> ''",
            params![service],
        )?;
        let row = row.ok_or_else(|| ApiError::new(500, "Unknown endpoint: production"))?;
        Ok(ServiceApi {
            service: service.to_string(),
            base_url: base_url(&row.text(2)),
            authorization: basic_authorization(&row.text(0), &row.text(1)),
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
}
