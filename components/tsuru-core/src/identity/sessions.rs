//! Logging in and out (API.md 3.7), with the login throttling of API.md 8.6: after 5
//! consecutive failures for an account, attempts are refused without hashing for a
//! delay that starts at 1 s and doubles with each further failure, up to 15 minutes.

use crate::identity::access::user_not_found;
use crate::identity::passwords::{self, is_valid_password, PASSWORD_MESSAGE};
use crate::identity::tokens::TokenHolder;
use crate::identity::users::{invalid_email, is_email};
use crate::identity::{access, tokens};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::kv::Kv;
use crate::runtime::response::Response;
use crate::runtime::time::now_millis;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Failures allowed before attempts are refused.
const FREE_FAILURES: u32 = 5;
/// The longest refusal: 15 minutes.
const MAX_DELAY_MS: i64 = 15 * 60 * 1000;

/// An account's consecutive failed logins, in the key-value store (API.md 8.6). Keyed by
/// user id, so a re-registered email starts clean. Read and written without a lock:
/// concurrent attempts may each see the same count, so a few more than five may be hashed,
/// never an unbounded number, since every later attempt sees the block.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Failures {
    count: u32,
    /// Attempts are refused until then (Unix milliseconds).
    blocked_until: i64,
}

impl Failures {
    fn key(user_id: i64) -> String {
        format!("login-failures:{user_id}")
    }

    /// Milliseconds left of the refusal at `now`, if attempts are refused.
    fn refused_for(&self, now: i64) -> Option<i64> {
        (self.count >= FREE_FAILURES && now < self.blocked_until).then(|| self.blocked_until - now)
    }

    /// The record after one more failure at `now`: from the fifth on, a delay of 1 s,
    /// doubled with each further failure, at most 15 minutes.
    fn after_failure(&self, now: i64) -> Failures {
        let count = self.count.saturating_add(1);
        let blocked_until = if count >= FREE_FAILURES {
            let doublings = (count - FREE_FAILURES).min(20);
            now + (1000_i64 << doublings).min(MAX_DELAY_MS)
        } else {
            0
        };
        Failures {
            count,
            blocked_until,
        }
    }
}

fn too_many(wait_ms: i64) -> ApiError {
    // Whole seconds, rounded up.
    let seconds = (wait_ms + 999) / 1000;
    ApiError::new(
        429,
        format!("Too many failed login attempts. Try again in {seconds} seconds."),
    )
}

/// `POST /users/:email/tokens`
pub fn login(ctx: &mut Ctx) -> ApiResult<Response> {
    let body: HashMap<String, String> = ctx.json_body("Invalid JSON")?;
    let Some(given) = body.get("password") else {
        return Err(ApiError::bad_request(
            "You must provide a password to login",
        ));
    };
    let email = ctx.param("email").to_string();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    let rows = ctx.db()?.query_first(
        "SELECT v.user_version, u.id, u.password_hash, u.token_epoch, u.kv_token_list \
         FROM pragma_user_version v LEFT JOIN users u ON u.email = ?",
        params![email.as_str()],
    )?;
    let row = rows.first().filter(|r| r.opt_int(1).is_some());
    let row = row.ok_or_else(user_not_found)?;
    let user_id = row.int(1);
    if !is_valid_password(given) {
        return Err(ApiError::bad_request(PASSWORD_MESSAGE));
    }
    let kv = ctx.kv()?;
    let failures = kv
        .get_json::<Failures>(&Failures::key(user_id))?
        .unwrap_or_default();
    if let Some(wait) = failures.refused_for(now_millis()) {
        return Err(too_many(wait));
    }
    if !passwords::verify(given, &row.text(2)) {
        record_failure(kv, user_id, &failures)?;
        return Err(ApiError::unauthorized(
            "Authentication failed, wrong password.",
        ));
    }
    if failures.count > 0 {
        kv.delete(&Failures::key(user_id))?;
    }
    let days = ctx.config.token_expire_days()?;
    let holder = TokenHolder {
        user_id,
        email: &email,
        epoch: row.int(3),
        kv_token_list: row.bool(4),
    };
    let issued = tokens::issue_user_token(ctx.db()?, kv, &holder, days, |db| {
        audit::record_in(db, &email, "login", &email, json!({}))
    })?;
    // Removed, or its password changed, since it was checked: the password may be the
    // old one.
    let token =
        issued.ok_or_else(|| ApiError::unauthorized("Authentication failed, wrong password."))?;
    Ok(Response::json(&json!({ "token": token })))
}

fn record_failure(kv: &Kv, user_id: i64, before: &Failures) -> ApiResult<()> {
    kv.set_json(&Failures::key(user_id), &before.after_failure(now_millis()))
}

/// `DELETE /users/tokens`: revokes the presented token.
pub fn logout(ctx: &mut Ctx) -> ApiResult<Response> {
    let token = access::bearer_token(ctx.req.header("authorization"))?;
    tokens::delete_token(ctx.kv()?, token)?;
    tokens::unindex_token(ctx.db()?, token)?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_a_doubling_delay_up_to_fifteen_minutes() {
        let mut record = Failures::default();
        let now = 1_000_000;
        for _ in 0..4 {
            record = record.after_failure(now);
            assert_eq!(record.refused_for(now), None);
        }
        record = record.after_failure(now);
        assert_eq!(record.refused_for(now), Some(1000));
        assert_eq!(record.refused_for(now + 1000), None);
        record = record.after_failure(now);
        assert_eq!(record.refused_for(now), Some(2000));
        record = record.after_failure(now);
        assert_eq!(record.refused_for(now), Some(4000));
        for _ in 0..40 {
            record = record.after_failure(now);
        }
        assert_eq!(record.refused_for(now), Some(MAX_DELAY_MS));
    }

    #[test]
    fn the_wait_is_whole_seconds_rounded_up() {
        assert_eq!(
            too_many(1).message,
            "Too many failed login attempts. Try again in 1 seconds."
        );
        assert_eq!(
            too_many(1000).message,
            "Too many failed login attempts. Try again in 1 seconds."
        );
        assert_eq!(
            too_many(1001).message,
            "Too many failed login attempts. Try again in 2 seconds."
        );
        assert_eq!(too_many(1001).status, 429);
    }
}
