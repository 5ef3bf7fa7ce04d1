//! Routing inside a component (API.md 1.2): segment-by-segment matching on the full
//! path, literals beating `:params`, 404/405 with `Allow`, HEAD on every GET route;
//! then the processing order of API.md 1.4: auth, body size, the route itself.

use crate::runtime::audit;
use crate::runtime::context::{Ctx, Platform};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::request::{percent_decode, Request, MAX_BODY};
use crate::runtime::response::Response;

pub type Handler = fn(&mut Ctx) -> ApiResult<Response>;

/// What a route asks of its caller, checked before the body is read (API.md 1.4). The
/// checks are `identity::access`'s; `token` says how the OpenAPI document describes it.
#[derive(Clone, Copy)]
pub struct Access {
    pub token: TokenUse,
    pub check: fn(&mut Ctx) -> ApiResult<()>,
}

/// Whether a route reads the Authorization header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    /// Never read.
    None,
    /// A valid token is required.
    Required,
    /// Read only in some cases (registration with registration off).
    Optional,
}

/// Decoded `:param` values of a matched route, by name.
type Params = Vec<(&'static str, String)>;

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

/// Reads the request body, at most `limit` bytes; `Err(true)` when it is larger.
pub type BodyReader<'a> = &'a mut dyn FnMut(usize) -> Result<Vec<u8>, BodyError>;

#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Broken(String),
}

/// Matches `path` against `pattern`; returns the decoded parameters and, per segment,
/// whether the pattern had a literal there (for precedence).
fn match_path(pattern: &'static str, path: &str) -> Option<(Params, Vec<bool>)> {
    let pattern_segments: Vec<&'static str> = pattern.split('/').skip(1).collect();
    let path_segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if pattern_segments.len() != path_segments.len() {
        return None;
    }
    let mut params = Vec::new();
    let mut literals = Vec::with_capacity(path_segments.len());
    for (pat, raw) in pattern_segments.iter().zip(path_segments) {
        // Empty segments match nothing, except where a route spells one out
        // (`/healthcheck/` is the one alias API.md defines).
        if raw.is_empty() && !pat.is_empty() {
            return None;
        }
        let decoded = String::from_utf8(percent_decode(raw.as_bytes())).ok()?;
        if let Some(name) = pat.strip_prefix(':') {
            params.push((name, decoded));
            literals.push(false);
        } else if *pat == decoded {
            literals.push(true);
        } else {
            return None;
        }
    }
    Some((params, literals))
}

const METHOD_ORDER: [&str; 5] = ["GET", "HEAD", "POST", "PUT", "DELETE"];

enum Found<'r> {
    Route(&'r Route, Params),
    WrongMethod(String),
    Nothing,
}

fn find<'r>(routes: &'r [Route], method: &str, path: &str) -> Found<'r> {
    let lookup_method = if method == "HEAD" { "GET" } else { method };
    let mut best: Option<(&Route, Params, Vec<bool>)> = None;
    let mut allowed: Vec<&str> = Vec::new();
    for route in routes {
        let Some((params, literals)) = match_path(route.path, path) else {
            continue;
        };
        allowed.push(route.method);
        if route.method == "GET" {
            allowed.push("HEAD");
        }
        if route.method != lookup_method {
            continue;
        }
        if best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
            best = Some((route, params, literals));
        }
    }
    match best {
        Some((route, params, _)) => Found::Route(route, params),
        None if allowed.is_empty() => Found::Nothing,
        None => Found::WrongMethod(
            METHOD_ORDER
                .iter()
                .filter(|m| allowed.contains(m))
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The answer to one request: the response, and the request's context for a response
/// whose body goes on streaming (see [`Response::streaming`]).
pub struct Answer {
    pub response: Response,
    ctx: Option<Ctx>,
}

impl Answer {
    fn without_context(response: Response) -> Self {
        Answer {
            response,
            ctx: None,
        }
    }

    /// Sends the rest of a streaming body through `write`; nothing for other responses.
    pub fn finish_stream(&mut self, write: &mut dyn FnMut(&[u8]) -> bool) {
        if let (Some(stream), Some(ctx)) = (self.response.stream.take(), self.ctx.as_ref()) {
            // A stream outlasts any idle limit of a remote database: it opens its own
            // connection when it needs one.
            ctx.release_db();
            stream(ctx, write);
        }
    }
}

/// Answers one request: the single entry point every component calls.
pub fn dispatch(
    routes: &[Route],
    platform: &'static dyn Platform,
    req: Request,
    read_body: BodyReader<'_>,
) -> Answer {
    let is_head = req.method == "HEAD";
    let (route, params) = match find(routes, &req.method, &req.path) {
        Found::Route(route, params) => (route, params),
        Found::WrongMethod(allow) => {
            return Answer::without_context(
                Response::from(ApiError::new(405, "Method Not Allowed")).header("allow", &allow),
            )
        }
        Found::Nothing => {
            return Answer::without_context(Response::from(ApiError::not_found(
                "404 page not found",
            )))
        }
    };
    let mut ctx = Ctx::new(req, platform);
    ctx.params = params;
    let mut response = run(route, &mut ctx, read_body).unwrap_or_else(Response::from);
    audit::prune_if_due(&ctx);
    if is_head {
        response.body.clear();
        response.stream = None;
    }
    Answer {
        response,
        ctx: Some(ctx),
    }
}

fn run(route: &Route, ctx: &mut Ctx, read_body: BodyReader<'_>) -> ApiResult<Response> {
    (route.access.check)(ctx)?;
    let declared_too_large = ctx
        .req
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    if declared_too_large {
        return Err(ApiError::body_too_large());
    }
    ctx.req.body = match read_body(MAX_BODY) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(ApiError::body_too_large()),
        Err(BodyError::Broken(e)) => {
            return Err(ApiError::bad_request(format!(
                "Could not read the request body: {e}"
            )))
        }
    };
    (route.handler)(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &mut Ctx) -> ApiResult<Response> {
        Ok(Response::empty())
    }

    fn anyone(_: &mut Ctx) -> ApiResult<()> {
        Ok(())
    }

    fn route(method: &'static str, path: &'static str) -> Route {
        Route {
            method,
            path,
            access: Access {
                token: TokenUse::None,
                check: anyone,
            },
            handler: ok,
        }
    }

    fn table() -> Vec<Route> {
        vec![
            route("GET", "/apps/:app"),
            route("DELETE", "/apps/:app"),
            route("PUT", "/apps/:app/:team"),
            route("DELETE", "/apps/:app/:team"),
            route("PUT", "/apps/:app/units"),
            route("DELETE", "/apps/:app/units"),
            route("GET", "/apps/:app/env"),
            route("POST", "/apps/:app/env"),
            route("DELETE", "/apps/:app/env"),
        ]
    }

    fn found(method: &str, path: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        let routes: &'static [Route] = Box::leak(table().into_boxed_slice());
        match find(routes, method, path) {
            Found::Route(r, p) => Some((r.path, p)),
            _ => None,
        }
    }

    #[test]
    fn literal_beats_param() {
        assert_eq!(found("PUT", "/apps/a/units").unwrap().0, "/apps/:app/units");
        assert_eq!(
            found("PUT", "/apps/a/backend").unwrap().0,
            "/apps/:app/:team"
        );
        assert_eq!(found("DELETE", "/apps/a/env").unwrap().0, "/apps/:app/env");
    }

    #[test]
    fn params_are_decoded_and_non_empty() {
        let (_, params) = found("GET", "/apps/my%2Dapp").unwrap();
        assert_eq!(params, vec![("app", "my-app".to_string())]);
        assert!(found("GET", "/apps/").is_none());
        assert!(found("GET", "/apps//env").is_none());
        let (_, params) = found("PUT", "/apps/a/a%40b.com").unwrap();
        assert_eq!(params[1].1, "a@b.com");
    }

    #[test]
    fn head_matches_get() {
        assert_eq!(found("HEAD", "/apps/a").unwrap().0, "/apps/:app");
    }

    #[test]
    fn wrong_method_lists_allowed_in_order() {
        let routes = table();
        match find(&routes, "POST", "/apps/x/run") {
            Found::WrongMethod(allow) => assert_eq!(allow, "PUT, DELETE"),
            _ => panic!("expected 405"),
        }
        match find(&routes, "PATCH", "/apps/x/env") {
            Found::WrongMethod(allow) => assert_eq!(allow, "GET, HEAD, POST, PUT, DELETE"),
            _ => panic!("expected 405"),
        }
        assert!(matches!(find(&routes, "GET", "/nope"), Found::Nothing));
    }
}
