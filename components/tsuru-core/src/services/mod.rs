//! Services, service instances and bindings (API.md 3.2, 3.3).
//!
//! - `records`: service and instance records and the checks of API.md 1.8;
//! - `manifest`: the YAML manifest of a service;
//! - `catalog`: the service routes (`/services/...`);
//! - `instances`: the instance routes (`/services/instances/...`);
//! - `bindings`: bind and unbind an app, and the variables a binding stores.

pub mod bindings;
pub mod catalog;
pub mod instances;
pub mod manifest;
pub mod records;
