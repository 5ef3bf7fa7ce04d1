//! Who may do what: users, teams and tokens (API.md 3.7, 3.8, 3.9, 1.3).
//!
//! - `access`: the auth levels routes declare and the authentication of a bearer token;
//! - `tokens`: token records in the key-value store, issue and revocation;
//! - `passwords`: argon2id hashing and the password rules;
//! - `users`, `sessions`, `resets`, `keys`, `teams`, `app_tokens`: the routes of
//!   accounts, login and logout, password resets, SSH keys, teams and admin-issued app
//!   tokens.

pub mod access;
pub mod app_tokens;
pub mod keys;
pub mod passwords;
pub mod resets;
pub mod sessions;
pub mod teams;
pub mod tokens;
pub mod users;
