//! Password reset (API.md 3.7, 8.7). The reset token lives on the user's row: a new
//! request replaces it (only the newest works), an account registered again has none,
//! and at most one reset mail per account goes out per minute. The mail is sent outside
//! any transaction (API.md 8.9); claims made before it are undone when it fails.

use crate::identity::access::user_not_found;
use crate::identity::passwords;
use crate::identity::tokens;
use crate::identity::users::{invalid_email, is_email};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::secrets::{new_token, sha256_hex};
use crate::runtime::time::now_unix;
use crate::upstream::mailer;
use serde_json::json;

/// Reset tokens are valid for 24 hours (API.md 3.7).
const RESET_TOKEN_SECONDS: i64 = 86_400;
/// At most one reset mail per account in this window (API.md 8.7).
const MAIL_WINDOW_SECONDS: i64 = 60;

fn mail_failed(reason: String) -> ApiError {
    ApiError::bad_gateway(format!("Failed to send e-mail: {reason}"))
}

/// `POST /users/:email/password[?token=]`: mails a reset token, or with a valid token
/// mails a new password and only then stores it (API.md 3.7, 7.12).
pub fn reset_password(ctx: &mut Ctx) -> ApiResult<Response> {
    let email = ctx.param("email").to_string();
    if !is_email(&email) {
        return Err(invalid_email());
    }
    let rows = ctx.db()?.query_first(
        "SELECT v.user_version, u.id FROM pragma_user_version v LEFT JOIN users u ON u.email = ?",
        params![email.as_str()],
    )?;
    let user_id = rows
        .first()
        .and_then(|r| r.opt_int(1))
        .ok_or_else(user_not_found)?;
    match ctx.req.query_param("token").map(str::to_string) {
        None => send_reset_token(ctx, user_id, &email),
        Some(token) => send_new_password(ctx, user_id, &email, &token),
    }
}

/// The first step: claim the mail window and store the new token's hash in one
/// statement, so of many concurrent requests exactly one mails; then mail.
fn send_reset_token(ctx: &Ctx, user_id: i64, email: &str) -> ApiResult<Response> {
    let token = new_token()?;
    let hash = sha256_hex(token.as_bytes());
    let now = now_unix();
    let db = ctx.db()?;
    let claimed = db.write(
        "UPDATE users SET reset_hash = ?1, reset_created = ?2, reset_mailed = ?2 \
         WHERE id = ?3 AND (reset_mailed IS NULL OR reset_mailed <= ?2 - ?4) RETURNING id",
        params![hash.as_str(), now, user_id, MAIL_WINDOW_SECONDS],
    )?;
    if claimed.is_empty() {
        let mailed = db
            .query_opt(
                "SELECT reset_mailed FROM users WHERE id = ?",
                params![user_id],
            )?
            .ok_or_else(user_not_found)?
            .int(0);
        let wait = (mailed + MAIL_WINDOW_SECONDS - now).clamp(1, MAIL_WINDOW_SECONDS);
        return Err(ApiError::new(
            429,
            format!("A password reset was requested recently. Try again in {wait} seconds."),
        ));
    }
    let body = format!(
        "Someone, hopefully you, asked to reset your tsuru password.\n\nUse this token to reset it: {token}\n\nIt is valid for 24 hours."
    );
    if let Err(reason) = mailer::send(ctx, email, "[Tsuru] Password reset process", &body) {
        // A failed mail opens no window and leaves no token.
        ctx.db()?.write(
            "UPDATE users SET reset_hash = NULL, reset_created = NULL, reset_mailed = NULL \
             WHERE id = ? AND reset_hash = ?",
            params![user_id, hash.as_str()],
        )?;
        return Err(mail_failed(reason));
    }
    audit::record_as(ctx, email, "reset-password-gen-token", email, json!({}));
    Ok(Response::empty())
}

/// The second step: claim the token (so two uses cannot both mail a password), mail the
/// new password, and only then store it and revoke every token of the user.
fn send_new_password(ctx: &Ctx, user_id: i64, email: &str, token: &str) -> ApiResult<Response> {
    let hash = sha256_hex(token.as_bytes());
    let now = now_unix();
    let db = ctx.db()?;
    let created = db
        .write_opt(
            "UPDATE users SET reset_hash = NULL WHERE id = ? AND reset_hash = ? \
             AND reset_created > ? RETURNING reset_created",
            params![user_id, hash.as_str(), now - RESET_TOKEN_SECONDS],
        )?
        .ok_or_else(|| ApiError::forbidden("Invalid token"))?
        .int(0);
    let new_password = passwords::generate()?;
    let body = format!("Your tsuru password has been reset. Your new password is: {new_password}");
    if let Err(reason) = mailer::send(ctx, email, "[Tsuru] Password successfuly redefined", &body) {
        // The token works again, unless a newer one replaced it meanwhile.
        ctx.db()?.write(
            "UPDATE users SET reset_hash = ?, reset_created = ? WHERE id = ? AND reset_hash IS NULL",
            params![hash.as_str(), created, user_id],
        )?;
        return Err(mail_failed(reason));
    }
    let password_hash = passwords::hash(&new_password)?;
    let db = ctx.db()?;
    let revoked = db.transaction(|db| -> ApiResult<tokens::Unindexed> {
        db.execute(
            "UPDATE users SET password_hash = ?, token_epoch = token_epoch + 1, reset_created = NULL \
             WHERE id = ?",
            params![password_hash.as_str(), user_id],
        )?;
        let revoked = tokens::unindex_user_tokens(db, user_id, None)?;
        audit::record_in(db, email, "reset-password", email, json!({}));
        Ok(revoked)
    })?;
    tokens::delete_user_token_records(ctx.kv()?, user_id, &revoked, None)?;
    Ok(Response::empty())
}
