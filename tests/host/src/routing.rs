//! HTTP trigger routing, with Spin's semantics.
//!
//! Spin matches with the `routefinder` crate: a route `/x/...` becomes `/x/*`, exact
//! routes beat wildcards, the more literal segments the better, so the longest prefix
//! wins. routefinder ignores leading and trailing slashes, so `/x/...` also matches
//! `/x`. The same crate is used here so edge cases match. The `spin-*` headers a
//! component receives are computed here as well.

use std::net::SocketAddr;

use anyhow::{anyhow, Result};

/// Where a route sends requests.
#[derive(Debug, Clone)]
struct Target {
    component: String,
    /// The route exactly as written in the manifest.
    raw_route: String,
}

/// The app's routing table.
pub struct Router {
    inner: routefinder::Router<Target>,
}

/// The outcome of routing one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// The route as written, e.g. `/services/...`.
    pub raw_route: String,
    /// The path below the route's prefix (`spin-path-info`).
    pub path_info: String,
    /// Values of `:name` segments, if the route has any.
    pub named: Vec<(String, String)>,
}

impl Router {
    /// Builds the table from `(route, component)` pairs, in manifest order. A route
    /// given twice keeps its last component, as in Spin (which warns about it).
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut ordered: Vec<(String, String)> = Vec::new();
        for (route, component) in routes {
            if let Some(i) = ordered.iter().position(|(r, _)| r == route) {
                eprintln!(
                    "spin-test-host: route {route:?} of component {:?} is a duplicate and is never used",
                    ordered[i].1
                );
                ordered.remove(i);
            }
            ordered.push((route.to_string(), component.to_string()));
        }
        let mut inner = routefinder::Router::new();
        for (route, component) in ordered {
            let based = based_route(&route);
            let spec = match based.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => based.clone(),
            };
            inner
                .add(
                    spec,
                    Target {
                        component: component.clone(),
                        raw_route: route.clone(),
                    },
                )
                .map_err(|e| anyhow!("route {route:?} of component {component:?}: {e}"))?;
        }
        Ok(Self { inner })
    }

    /// Routes a raw (not percent-decoded) request path.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let m = self.inner.best_match(path)?;
        let target = m.handler();
        let captures = m.captures();
        // routefinder drops trailing slashes; Spin puts them back into the path info.
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some("") if path.ends_with('/') => "/".to_string(),
            Some("") => String::new(),
            Some(w) if path.ends_with('/') => format!("/{w}/"),
            Some(w) => format!("/{w}"),
        };
        let named = captures
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Some(RouteMatch {
            component: target.component.clone(),
            raw_route: target.raw_route.clone(),
            path_info,
            named,
        })
    }

    /// `(route, component)` pairs, best match first; for the startup listing.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.inner
            .iter()
            .map(|(_, t)| (t.raw_route.clone(), t.component.clone()))
            .collect()
    }
}

/// Spin prefixes every route with the app base, always `/` for manifest v2: the base
/// loses its trailing slash, the route gains a leading one and loses one trailing one.
fn based_route(route: &str) -> String {
    let absolute = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    match absolute.strip_suffix('/') {
        Some(s) => s.to_string(),
        None => absolute,
    }
}

/// The headers Spin adds to a request before handing it to a component, in the order
/// Spin adds them. `host` is the request's Host header (Spin uses `localhost` when
/// there is none) and `path_and_query` the original request target.
pub fn spin_headers(
    m: &RouteMatch,
    host: &str,
    path_and_query: &str,
    client: SocketAddr,
) -> Vec<(String, String)> {
    let route = based_route(&m.raw_route);
    let component_route = m
        .raw_route
        .strip_suffix("/...")
        .unwrap_or(&m.raw_route)
        .to_string();
    let mut headers = vec![
        ("spin-path-info".to_string(), m.path_info.clone()),
        (
            "spin-full-url".to_string(),
            format!("http://{host}{path_and_query}"),
        ),
        ("spin-matched-route".to_string(), route),
        ("spin-base-path".to_string(), "/".to_string()),
        ("spin-raw-component-route".to_string(), m.raw_route.clone()),
        ("spin-component-route".to_string(), component_route),
        ("spin-client-addr".to_string(), client.to_string()),
    ];
    for (name, value) in &m.named {
        headers.push((
            format!(
                "spin-path-match-{}",
                name.to_ascii_lowercase().replace('_', "-")
            ),
            value.clone(),
        ));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::build([
            ("/apps/...", "apps"),
            ("/swap", "apps"),
            ("/services/...", "services"),
            ("/services/instances/...", "service-instances"),
            ("/tokens", "tokens"),
            ("/healthcheck/...", "meta"),
            ("/openapi.json", "meta-openapi"),
            ("/...", "meta-fallback"),
        ])
        .unwrap()
    }

    fn component(path: &str) -> String {
        router().route(path).unwrap().component
    }

    #[test]
    fn longest_prefix_and_exact_routes_win() {
        assert_eq!(component("/services/instances/x"), "service-instances");
        assert_eq!(component("/services/instances"), "service-instances");
        assert_eq!(component("/services/x"), "services");
        assert_eq!(component("/services"), "services");
        assert_eq!(component("/swap"), "apps");
        assert_eq!(component("/apps"), "apps");
        assert_eq!(component("/openapi.json"), "meta-openapi");
        assert_eq!(component("/nothing/here"), "meta-fallback");
        assert_eq!(component("/"), "meta-fallback");
        assert_eq!(component("/tokens"), "tokens");
        // routefinder ignores a trailing slash on exact routes, as Spin does.
        assert_eq!(component("/tokens/"), "tokens");
        assert_eq!(component("/tokensx"), "meta-fallback");
    }

    #[test]
    fn no_route_no_match() {
        let r = Router::build([("/apps/...", "apps")]).unwrap();
        assert!(r.route("/users").is_none());
        assert!(r.route("/").is_none());
    }

    #[test]
    fn path_info_keeps_trailing_slashes() {
        let r = Router::build([("/test/...", "t"), ("/exact", "e")]).unwrap();
        assert_eq!(r.route("/test").unwrap().path_info, "");
        assert_eq!(r.route("/test/").unwrap().path_info, "/");
        assert_eq!(r.route("/test/hello").unwrap().path_info, "/hello");
        assert_eq!(r.route("/test/hello/").unwrap().path_info, "/hello/");
        assert_eq!(r.route("/exact").unwrap().path_info, "");
        let all = Router::build([("/...", "all")]).unwrap();
        assert_eq!(all.route("/a/b").unwrap().path_info, "/a/b");
    }

    #[test]
    fn headers_match_spin() {
        let r = Router::build([("/foo/...", "foo")]).unwrap();
        let m = r.route("/foo/bar").unwrap();
        let client: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let h = spin_headers(&m, "example.dev", "/foo/bar?k=v", client);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("spin-full-url"), Some("http://example.dev/foo/bar?k=v"));
        assert_eq!(get("spin-path-info"), Some("/bar"));
        assert_eq!(get("spin-matched-route"), Some("/foo/..."));
        assert_eq!(get("spin-base-path"), Some("/"));
        assert_eq!(get("spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get("spin-component-route"), Some("/foo"));
        assert_eq!(get("spin-client-addr"), Some("127.0.0.1:8777"));
    }

    #[test]
    fn duplicate_route_last_wins() {
        let r = Router::build([("/x", "first"), ("/x", "second")]).unwrap();
        assert_eq!(r.route("/x").unwrap().component, "second");
        assert_eq!(r.routes().len(), 1);
    }
}
