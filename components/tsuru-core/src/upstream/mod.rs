//! Clients of the outside systems (API.md 5), one module per system and its protocol:
//! `gandalf` (git server), `provisioner`, `service_api` (the tsuru service protocol),
//! `mailer`, `healer`. They build requests, send them through the request's outbound
//! HTTP and turn replies into values or API.md's `<reason>`; they know no route.

pub mod gandalf;
pub mod healer;
pub mod mailer;
pub mod provisioner;
pub mod service_api;
