//! The HTTP trigger: accept connections, route each request, run it in a fresh
//! component instance, and stream the component's response back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView,
};

use crate::outbound::AllowedHosts;
use crate::routing::{spin_headers, Router};
use crate::state::{AppShared, ComponentGrants, HostState};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Body of every response this server writes.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// One routable component, ready to instantiate.
pub struct ComponentRuntime {
    pub grants: Arc<ComponentGrants>,
    pub pre: ProxyPre<HostState>,
}

/// Everything a request needs, shared by all connections of one host.
pub struct AppRuntime {
    pub router: Router,
    /// JSON body of `/.well-known/spin/info`.
    pub app_info: String,
    pub components: HashMap<String, Arc<ComponentRuntime>>,
    pub shared: Arc<AppShared>,
    /// Where this host listens; target of "self" outbound requests.
    pub self_addr: SocketAddr,
}

/// Accepts connections until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppRuntime>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("spin-test-host: accept failed: {e}");
                        continue;
                    }
                };
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(handle(app, req, client).await) }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    // A client closing its connection early is normal in tests.
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            // Reap finished connection tasks so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

fn plain(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r
}

/// Handles one request the way Spin's HTTP trigger does.
async fn handle(
    app: Arc<AppRuntime>,
    mut req: Request<Incoming>,
    client: SocketAddr,
) -> Response<ResponseBody> {
    // Transport detail only meaningful to this server.
    req.headers_mut().remove(http::header::CONNECTION);

    let path = req.uri().path().to_string();
    if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
        return match well_known {
            "health" => plain(StatusCode::OK, "OK"),
            "info" => {
                let mut r = Response::new(
                    Full::new(Bytes::from(app.app_info.clone()))
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            _ => plain(StatusCode::NOT_FOUND, ""),
        };
    }
    // Spin answers unmatched paths with an empty 404.
    let Some(m) = app.router.route(&path) else {
        return plain(StatusCode::NOT_FOUND, "");
    };
    let Some(component) = app.components.get(&m.component).cloned() else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    match run_component(&app, component, &m, req, client).await {
        Ok(resp) => resp,
        Err(e) => {
            eprintln!(
                "spin-test-host: component {:?} failed on {path}: {e:#}",
                m.component
            );
            plain(StatusCode::INTERNAL_SERVER_ERROR, "")
        }
    }
}

async fn run_component(
    app: &AppRuntime,
    component: Arc<ComponentRuntime>,
    m: &crate::routing::RouteMatch,
    req: Request<Incoming>,
    client: SocketAddr,
) -> anyhow::Result<Response<ResponseBody>> {
    let (mut parts, body) = req.into_parts();

    let host = match parts.headers.get(http::header::HOST) {
        Some(h) => h.to_str()?.to_string(),
        None => match parts.uri.authority() {
            Some(a) => a.to_string(),
            None => anyhow::bail!("no 'Host' header present in request"),
        },
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());

    // Spin rebuilds the header list: the client's headers (which must be UTF-8), then
    // its own `spin-*` headers appended.
    for value in parts.headers.values() {
        value.to_str()?;
    }
    for (name, value) in spin_headers(m, &host, &path_and_query, client) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            parts.headers.append(n, v);
        }
    }
    // The component sees an absolute URI: scheme http, authority from Host.
    parts.uri = http::Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path_and_query.as_str())
        .build()?;
    let req = Request::from_parts(parts, body);

    let hooks = OutboundHooks {
        allowed: component.grants.allowed_hosts.clone(),
        self_addr: app.self_addr,
    };
    let state = HostState::new(app.shared.clone(), component.grants.clone(), hooks);
    let mut store = Store::new(crate::compile::engine(), state);
    let proxy = component.pre.instantiate_async(&mut store).await?;
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let outparam = store.data_mut().http().new_response_outparam(tx)?;

    let task = tokio::spawn(async move {
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await
    });

    match rx.await {
        Ok(Ok(resp)) => {
            let id = m.component.clone();
            // The body may still be streaming: report late guest failures in the log.
            tokio::spawn(async move {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!(
                        "spin-test-host: component {id:?} failed after its response started: {e:#}"
                    ),
                    Err(e) => eprintln!("spin-test-host: component {id:?} task failed: {e}"),
                }
            });
            Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        }
        Ok(Err(code)) => anyhow::bail!("component answered with error {code:?}"),
        Err(_) => {
            // No response was set: the guest returned early or trapped.
            task.await??;
            anyhow::bail!("guest failed to produce a response prior to returning")
        }
    }
}

/// Outbound HTTP policy of one instance: `allowed_outbound_hosts`, then wasmtime's
/// default client (which honours the connect / first-byte / between-bytes timeouts
/// of the request options, 600 s each by default as in Spin).
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
    self_addr: SocketAddr,
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let allowed = self.allowed.clone();
        let self_addr = self.self_addr;
        Box::new(async move {
            let is_self = match request.uri().authority() {
                None => true,
                Some(a) => a.host().is_empty() || a.host() == "self.alt",
            };
            if is_self {
                if !allowed.allows_self() {
                    return Err(HttpError::HttpRequestDenied);
                }
                // A request to the app itself goes to this host's own listener.
                let pq = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                let authority = self_addr.to_string();
                *request.uri_mut() = http::Uri::builder()
                    .scheme("http")
                    .authority(authority.as_str())
                    .path_and_query(pq)
                    .build()
                    .map_err(|_| HttpError::HttpRequestUriInvalid)?;
                if let Ok(v) = HeaderValue::from_str(&authority) {
                    request.headers_mut().insert(http::header::HOST, v);
                }
            } else if !allowed.allows_url(&request.uri().to_string()) {
                if let AllowedHosts::Unusable(reason) = &*allowed {
                    eprintln!("spin-test-host: outbound request denied: {reason}");
                }
                return Err(HttpError::HttpRequestDenied);
            }
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                resp.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}
