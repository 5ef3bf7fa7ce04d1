//! The shared library of the tsuru API components: everything a rule needs lives here
//! once, and each component is a route table that calls into it.

pub mod app_env;
pub mod app_logs;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod gandalf;
pub mod healers;
pub mod http;
pub mod instances;
pub mod kv;
pub mod mailer;
pub mod meta;
pub mod outbound;
pub mod password;
pub mod platforms;
pub mod provisioner;
pub mod quotas;
pub mod router;
pub mod routes;
pub mod schema;
pub mod service_api;
pub mod services;
pub mod spin;
pub mod teams;
pub mod tokens;
pub mod units;
pub mod users;
pub mod util;
pub mod validate;

pub use auth::{Access, Caller, User};
pub use context::Ctx;
pub use error::{ApiError, ApiResult};
pub use http::Response;
pub use router::Route;
