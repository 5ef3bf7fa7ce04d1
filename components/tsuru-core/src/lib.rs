//! The shared library of the tsuru API components: every rule lives here once, and each
//! component (`components/<name>`) is a route table that calls into it.
//!
//! Its folders are layers; a module imports only from its own layer or the ones above
//! it in this list, never from a later one (a unit test checks it):
//!
//! 1. `runtime`: the request pipeline and the stores (routing, context, errors, config,
//!    SQLite and its schema, key-value, outbound HTTP, audit, the Spin platform);
//! 2. `upstream`: clients of the outside systems (Gandalf, provisioner, service APIs,
//!    mailer, healers), one module per system;
//! 3. `identity`: users, teams, tokens and the access checks routes declare;
//! 4. `apps`: apps and everything that hangs off them (env, units, logs, team access,
//!    cname, quotas' ledger, calls to the services bound to an app);
//! 5. `services`: services, their instances and bindings to apps;
//! 6. `quotas`, `platforms`, `healers`, `meta`: the remaining resource groups.

pub mod runtime;

pub mod upstream;

pub mod identity;

pub mod apps;

pub mod services;

pub mod healers;
pub mod meta;
pub mod platforms;
pub mod quotas;

#[cfg(test)]
mod layering;
