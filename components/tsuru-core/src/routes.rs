//! Every route of the API, one table per component: `spin.toml` sends a path prefix to a
//! component, and the component dispatches it with its table here. A route's rules are
//! in the module its handler names.

use crate::auth::Access;
use crate::router::Route;
use crate::{
    app_env, apps, healers, instances, meta, platforms, quotas, services, teams, tokens, units,
    users,
};

/// `meta`: health check and the OpenAPI document; its `/...` fallback answers 404 for
/// every path no other component owns (API.md 3.10).
#[rustfmt::skip]
pub const META: &[Route] = &[
    Route { method: "GET", path: "/healthcheck", access: Access::None, handler: meta::healthcheck },
    Route { method: "GET", path: "/healthcheck/", access: Access::None, handler: meta::healthcheck },
    Route { method: "GET", path: "/openapi.json", access: Access::None, handler: meta::openapi },
];

/// `users`: User accounts, login, password reset, SSH keys (API.md 3.7).
#[rustfmt::skip]
pub const USERS: &[Route] = &[
    Route { method: "POST", path: "/users", access: Access::Custom(users::registration_gate), handler: users::register },
    Route { method: "POST", path: "/users/:email/password", access: Access::None, handler: users::reset_password },
    Route { method: "POST", path: "/users/:email/tokens", access: Access::None, handler: users::login },
    Route { method: "DELETE", path: "/users/tokens", access: Access::AnyToken, handler: users::logout },
    Route { method: "PUT", path: "/users/password", access: Access::User, handler: users::change_password },
    Route { method: "DELETE", path: "/users", access: Access::User, handler: users::remove },
    Route { method: "POST", path: "/users/keys", access: Access::User, handler: users::add_key },
    Route { method: "DELETE", path: "/users/keys", access: Access::User, handler: users::remove_key },
    Route { method: "GET", path: "/users/:email/keys", access: Access::User, handler: users::list_keys },
];

/// `teams`: Teams and their members (API.md 3.8).
#[rustfmt::skip]
pub const TEAMS: &[Route] = &[
    Route { method: "GET", path: "/teams", access: Access::User, handler: teams::list },
    Route { method: "POST", path: "/teams", access: Access::User, handler: teams::create },
    Route { method: "GET", path: "/teams/:team", access: Access::User, handler: teams::info },
    Route { method: "DELETE", path: "/teams/:team", access: Access::User, handler: teams::remove },
    Route { method: "PUT", path: "/teams/:team/:user", access: Access::User, handler: teams::add_member },
    Route { method: "DELETE", path: "/teams/:team/:user", access: Access::User, handler: teams::remove_member },
];

/// `tokens`: Admin-issued app tokens (API.md 3.9).
#[rustfmt::skip]
pub const TOKENS: &[Route] = &[
    Route { method: "POST", path: "/tokens", access: Access::Admin, handler: tokens::create },
];

/// `apps`: Application lifecycle: apps, env, units, access, cname, logs, swap (API.md 3.1).
#[rustfmt::skip]
pub const APPS: &[Route] = &[
    Route { method: "GET", path: "/apps", access: Access::User, handler: apps::list },
    Route { method: "POST", path: "/apps", access: Access::User, handler: apps::create },
    Route { method: "GET", path: "/apps/:app", access: Access::User, handler: apps::info },
    Route { method: "DELETE", path: "/apps/:app", access: Access::User, handler: apps::remove },
    Route { method: "GET", path: "/apps/:app/restart", access: Access::User, handler: apps::restart },
    Route { method: "POST", path: "/apps/:app/restart", access: Access::User, handler: apps::restart },
    Route { method: "GET", path: "/apps/:app/env", access: Access::User, handler: app_env::get },
    Route { method: "POST", path: "/apps/:app/env", access: Access::User, handler: app_env::set },
    Route { method: "DELETE", path: "/apps/:app/env", access: Access::User, handler: app_env::unset },
    Route { method: "PUT", path: "/apps/:app/units", access: Access::User, handler: units::add },
    Route { method: "DELETE", path: "/apps/:app/units", access: Access::User, handler: units::remove },
    Route { method: "PUT", path: "/apps/:app/:team", access: Access::User, handler: apps::grant },
    Route { method: "DELETE", path: "/apps/:app/:team", access: Access::User, handler: apps::revoke },
    Route { method: "POST", path: "/apps/:app/cname", access: Access::User, handler: apps::set_cname },
    Route { method: "DELETE", path: "/apps/:app/cname", access: Access::User, handler: apps::unset_cname },
    Route { method: "GET", path: "/apps/:app/log", access: Access::User, handler: apps::read_log },
    Route { method: "POST", path: "/apps/:app/log", access: Access::AnyToken, handler: apps::append_log },
    Route { method: "GET", path: "/apps/:app/available", access: Access::AnyToken, handler: apps::available },
    Route { method: "PUT", path: "/swap", access: Access::User, handler: apps::swap },
];

/// `platforms`: Platforms (API.md 3.6).
#[rustfmt::skip]
pub const PLATFORMS: &[Route] = &[
    Route { method: "GET", path: "/platforms", access: Access::User, handler: platforms::list },
    Route { method: "POST", path: "/platforms", access: Access::Admin, handler: platforms::add },
    Route { method: "DELETE", path: "/platforms/:platform", access: Access::Admin, handler: platforms::remove },
];

/// `quotas`: Quotas (API.md 3.4).
#[rustfmt::skip]
pub const QUOTAS: &[Route] = &[
    Route { method: "GET", path: "/quota/:owner", access: Access::AnyToken, handler: quotas::get },
    Route { method: "PUT", path: "/quota/:owner", access: Access::Admin, handler: quotas::set },
];

/// `services`: Services and their manifests (API.md 3.2).
#[rustfmt::skip]
pub const SERVICES: &[Route] = &[
    Route {
        method: "GET",
        path: "/services",
        access: Access::User,
        handler: services::list,
    },
    Route {
        method: "POST",
        path: "/services",
        access: Access::User,
        handler: services::create,
    },
    Route {
        method: "PUT",
        path: "/services",
        access: Access::User,
        handler: services::update,
    },
    Route {
        method: "GET",
        path: "/services/:service",
        access: Access::User,
        handler: services::info,
    },
    Route {
        method: "DELETE",
        path: "/services/:service",
        access: Access::User,
        handler: services::remove,
    },
    Route {
        method: "GET",
        path: "/services/:service/doc",
        access: Access::User,
        handler: services::doc,
    },
    Route {
        method: "PUT",
        path: "/services/:service/doc",
        access: Access::User,
        handler: services::set_doc,
    },
    Route {
        method: "PUT",
        path: "/services/:service/:team",
        access: Access::User,
        handler: services::grant,
    },
    Route {
        method: "DELETE",
        path: "/services/:service/:team",
        access: Access::User,
        handler: services::revoke,
    },
];

/// `service-instances`: Service instances, bind and unbind (API.md 3.3).
#[rustfmt::skip]
pub const SERVICE_INSTANCES: &[Route] = &[
    Route {
        method: "GET",
        path: "/services/instances",
        access: Access::User,
        handler: instances::list,
    },
    Route {
        method: "POST",
        path: "/services/instances",
        access: Access::User,
        handler: instances::create,
    },
    Route {
        method: "GET",
        path: "/services/instances/:instance",
        access: Access::User,
        handler: instances::info,
    },
    Route {
        method: "DELETE",
        path: "/services/instances/:instance",
        access: Access::User,
        handler: instances::remove,
    },
    Route {
        method: "GET",
        path: "/services/instances/:instance/status",
        access: Access::User,
        handler: instances::status,
    },
    Route {
        method: "PUT",
        path: "/services/instances/:instance/:app",
        access: Access::User,
        handler: instances::bind,
    },
    Route {
        method: "DELETE",
        path: "/services/instances/:instance/:app",
        access: Access::User,
        handler: instances::unbind,
    },
];

/// `healers`: Healers (API.md 3.5).
#[rustfmt::skip]
pub const HEALERS: &[Route] = &[
    Route {
        method: "GET",
        path: "/healers",
        access: Access::AnyToken,
        handler: healers::list,
    },
    Route {
        method: "GET",
        path: "/healers/:healer",
        access: Access::AnyToken,
        handler: healers::execute,
    },
];

/// Every component's table, by component name (the `spin.toml` component ids).
pub const ALL: &[(&str, &[Route])] = &[
    ("meta", META),
    ("users", USERS),
    ("teams", TEAMS),
    ("tokens", TOKENS),
    ("apps", APPS),
    ("platforms", PLATFORMS),
    ("quotas", QUOTAS),
    ("services", SERVICES),
    ("service-instances", SERVICE_INSTANCES),
    ("healers", HEALERS),
];

#[cfg(test)]
mod tests {
    //! The OpenAPI document and these tables describe the same API: a route missing from
    //! the document, or an operation no table routes, fails here.
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    fn document() -> Value {
        serde_json::from_str(include_str!("openapi/openapi.json")).expect("valid JSON")
    }

    /// `/apps/:app/env` as OpenAPI writes it: `/apps/{app}/env`.
    fn openapi_path(path: &str) -> String {
        path.split('/')
            .map(|seg| match seg.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => seg.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_route_is_documented_with_its_component_and_auth() {
        let doc = document();
        for (component, table) in ALL {
            for route in *table {
                let path = openapi_path(route.path);
                let op = &doc["paths"][&path][route.method.to_lowercase()];
                assert!(
                    op.is_object(),
                    "{} {} is not documented",
                    route.method,
                    path
                );
                assert_eq!(op["tags"], json!([component]), "{} {path}", route.method);
                let security = match route.access {
                    Access::None => json!([]),
                    Access::Custom(_) => json!([{"bearer": []}, {}]),
                    Access::User | Access::Admin | Access::AnyToken => json!([{"bearer": []}]),
                };
                assert_eq!(op["security"], security, "{} {path}", route.method);
                let statuses = op["responses"].as_object().expect("responses");
                if !matches!(route.access, Access::None) {
                    assert!(statuses.contains_key("401"), "{} {path}", route.method);
                }
            }
        }
    }

    #[test]
    fn every_documented_operation_is_routed() {
        let routed: BTreeSet<(String, String)> = ALL
            .iter()
            .flat_map(|(_, table)| table.iter())
            .map(|r| (r.method.to_lowercase(), openapi_path(r.path)))
            .collect();
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(documented, routed);
    }
}
