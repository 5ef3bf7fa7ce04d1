//! The request pipeline and the stores: what every route runs on. Nothing here knows
//! a resource group; everything above builds on it.
//!
//! - `spin`: the Spin platform (SQLite, key-value, variables, outbound HTTP) and `serve`,
//!   the entry point of every component;
//! - `router`: a component's route table, matching, and the processing order of API.md 1.4;
//! - `context`: the per-request context handlers get (request, caller, stores, config);
//! - `request`, `response`, `error`: the wire side (API.md 1.5, 1.6);
//! - `caller`: who is calling, as the access checks resolved it;
//! - `config`: Spin variables (API.md 1.7);
//! - `db`, `schema`, `kv`: SQLite (the versioned schema included) and the key-value store;
//! - `outbound`: outbound HTTP requests and replies;
//! - `audit`: the append-only audit trail;
//! - `time`, `secrets`: clock, RNG, tokens and hashes.

pub mod audit;
pub mod caller;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod kv;
pub mod outbound;
pub mod request;
pub mod response;
pub mod router;
pub mod schema;
pub mod secrets;
pub mod spin;
pub mod time;
