//! Apps (API.md 3.1) and what hangs off them.
//!
//! - `records`: the app record and its access rule, which every app route loads first;
//! - `listing`: the app object, `GET /apps` and `GET /apps/:app`;
//! - `lifecycle`: creation and removal, with their rollbacks;
//! - `env`, `units`, `logs`, `cname`, `team_access`, `operations` (restart, swap, start,
//!   run), `deploys`: the routes on one app, each module with its rules and SQL;
//! - `quota`: the quota ledger that creation and units reserve against;
//! - `bound_services`: the service API calls app changes make to bound instances.

pub mod bound_services;
pub mod cname;
pub mod deploys;
pub mod env;
pub mod lifecycle;
pub mod listing;
pub mod logs;
pub mod operations;
pub mod quota;
pub mod records;
pub mod team_access;
pub mod units;
