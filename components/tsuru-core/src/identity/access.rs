//! Access checks (API.md 1.3): the auth levels routes declare, and authentication of the
//! request's bearer token against its key-value record (user tokens against the user's
//! revocation epoch, app tokens against the app's serial).

use crate::identity::tokens::{token_key, TokenRecord};
use crate::params;
use crate::runtime::caller::{AppCaller, Caller, User};
use crate::runtime::context::Ctx;
use crate::runtime::db::Row;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::router::{Access, TokenUse};
use crate::runtime::secrets::sha256_hex;
use crate::runtime::time::now_unix;

/// A route's target user does not exist.
pub fn user_not_found() -> ApiError {
    ApiError::not_found("User not found")
}

/// `none`: the Authorization header is not read.
pub const NONE: Access = Access {
    token: TokenUse::None,
    check: anyone,
};
/// `user`: a valid user token; an app token is 403.
pub const USER: Access = Access {
    token: TokenUse::Required,
    check: require_user,
};
/// `admin`: a valid user token of an admin; anyone else is 403.
pub const ADMIN: Access = Access {
    token: TokenUse::Required,
    check: require_admin,
};
/// `app-ok`: any valid token; the route applies its own rule to app tokens.
pub const ANY_TOKEN: Access = Access {
    token: TokenUse::Required,
    check: require_token,
};

fn anyone(_: &mut Ctx) -> ApiResult<()> {
    Ok(())
}

fn require_token(ctx: &mut Ctx) -> ApiResult<()> {
    ctx.caller = Some(authenticate(ctx)?);
    Ok(())
}

fn require_user(ctx: &mut Ctx) -> ApiResult<()> {
    match authenticate(ctx)? {
        Caller::App(_) => Err(ApiError::forbidden("This action requires a user token")),
        user => {
            ctx.caller = Some(user);
            Ok(())
        }
    }
}

fn require_admin(ctx: &mut Ctx) -> ApiResult<()> {
    match authenticate(ctx)? {
        Caller::User(user) if user.is_admin => {
            ctx.caller = Some(Caller::User(user));
            Ok(())
        }
        _ => Err(ApiError::forbidden("Forbidden")),
    }
}

/// Extracts the token from `Authorization: <scheme> <token>`.
pub fn bearer_token(header: Option<&str>) -> ApiResult<&str> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(ApiError::unauthorized(
            "You must provide the Authorization header",
        ));
    }
    let mut words = value.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(_scheme), Some(token), None) => Ok(token),
        _ => Err(ApiError::invalid_token()),
    }
}

/// The user of a token with its teams, and the schema version (`Db::query_first`):
/// `?1` the user id.
const USER_BY_ID: &str = "SELECT v.user_version, u.id, u.email, u.token_epoch, t.name \
     FROM pragma_user_version v LEFT JOIN users u ON u.id = ?1 \
     LEFT JOIN team_members m ON m.user_id = u.id LEFT JOIN teams t ON t.id = m.team_id";

/// The same for a token issued before users had ids: only an account of that time
/// (`legacy_tokens`) accepts it, never one registered later with the same email.
const LEGACY_USER_BY_EMAIL: &str = "SELECT v.user_version, u.id, u.email, u.token_epoch, t.name \
     FROM pragma_user_version v LEFT JOIN users u ON u.email = ?1 AND u.legacy_tokens = 1 \
     LEFT JOIN team_members m ON m.user_id = u.id LEFT JOIN teams t ON t.id = m.team_id";

/// Whether a token's app still exists (its id is never reused), and the schema version.
const APP_ALIVE: &str = "SELECT v.user_version, a.id FROM pragma_user_version v \
     LEFT JOIN apps a ON a.id = ?1 AND a.name = ?2";

/// Resolves the request's token to a caller, or answers the exact 401 of API.md 1.3.
/// One key-value read, and one statement that is also the request's schema check.
pub fn authenticate(ctx: &Ctx) -> ApiResult<Caller> {
    let token = bearer_token(ctx.req.header("authorization"))?;
    let hash = sha256_hex(token.as_bytes());
    let kv = ctx.kv()?;
    let Some(record) = kv.get_json::<TokenRecord>(&token_key(&hash))? else {
        return Err(ApiError::invalid_token());
    };
    if record.expires <= now_unix() {
        kv.delete(&token_key(&hash))?;
        return Err(ApiError::invalid_token());
    }
    let db = ctx.db()?;
    match record.kind.as_str() {
        "user" => {
            let rows = match (record.user_id, &record.email) {
                (Some(id), _) => db.query_first(USER_BY_ID, params![id])?,
                (None, Some(email)) => db.query_first(LEGACY_USER_BY_EMAIL, params![email])?,
                (None, None) => return Err(ApiError::invalid_token()),
            };
            let (user, epoch) = user_from_rows(&rows, ctx.config.admin_team().as_deref())
                .ok_or_else(ApiError::invalid_token)?;
            if epoch != record.epoch {
                return Err(ApiError::invalid_token());
            }
            Ok(Caller::User(user))
        }
        "app" => {
            let app = record.app.ok_or_else(ApiError::invalid_token)?;
            // A system token (the git hook's) names no app and is checked no further.
            if let Some(id) = record.app_serial {
                let rows = db.query_first(APP_ALIVE, params![id, app.as_str()])?;
                if rows.first().and_then(|r| r.opt_int(1)).is_none() {
                    return Err(ApiError::invalid_token());
                }
            }
            Ok(Caller::App(AppCaller {
                app,
                id: record.app_serial,
            }))
        }
        _ => Err(ApiError::invalid_token()),
    }
}

/// A user and their token epoch from rows of `USER_BY_ID`'s shape (`None`: no such user).
fn user_from_rows(rows: &[Row], admin_team: Option<&str>) -> Option<(User, i64)> {
    let first = rows.first()?;
    let id = first.opt_int(1)?;
    let mut teams: Vec<String> = rows.iter().filter_map(|r| r.opt_text(4)).collect();
    teams.sort();
    let is_admin = admin_team.is_some_and(|admin| teams.iter().any(|t| t == admin));
    Some((
        User {
            id,
            email: first.text(2),
            teams,
            is_admin,
        },
        first.int(3),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            bearer_token(None).unwrap_err().message,
            "You must provide the Authorization header"
        );
        assert_eq!(bearer_token(Some("   ")).unwrap_err().status, 401);
        assert_eq!(bearer_token(Some("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("  Token\tabc  ")).unwrap(), "abc");
        assert_eq!(
            bearer_token(Some("abc")).unwrap_err().message,
            "Invalid token"
        );
        assert_eq!(
            bearer_token(Some("a b c")).unwrap_err().message,
            "Invalid token"
        );
    }
}

#[cfg(test)]
mod authenticate_tests {
    use super::*;
    use crate::identity::tokens::{issue_app_token, issue_user_token, TokenHolder};
    use crate::runtime::context::fake::FakePlatform;
    use crate::runtime::request::Request;

    fn ctx_with(platform: &'static FakePlatform, token: &str) -> Ctx {
        Ctx::new(
            Request::new(
                "GET",
                "/teams",
                vec![("authorization".into(), format!("bearer {token}"))],
            ),
            platform,
        )
    }

    /// A token of user 1 issued at `epoch`, valid for `days`.
    fn login(ctx: &Ctx, epoch: i64, days: i64) -> String {
        let holder = TokenHolder {
            user_id: 1,
            email: "a@b.com",
            epoch,
            kv_token_list: false,
        };
        issue_user_token(ctx.db().unwrap(), ctx.kv().unwrap(), &holder, days, |_| {})
            .unwrap()
            .unwrap()
    }

    fn setup() -> &'static FakePlatform {
        let platform = FakePlatform::leaked(&[("admin_team", "admin"), ("platforms", "python")]);
        let ctx = ctx_with(platform, "x");
        let db = ctx.db().unwrap();
        for sql in [
            "INSERT INTO users (id, email, password_hash, token_epoch, created_at) VALUES (1, 'a@b.com', 'h', 2, 'now')",
            "INSERT INTO teams (id, name, created_at) VALUES (1, 'admin', 'now')",
            "INSERT INTO team_members (team_id, user_id) VALUES (1, 1)",
            "INSERT INTO apps (id, name, platform, owner, state, created_at) VALUES (7, 'web', 'python', 'a@b.com', 'ready', 'now')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        platform
    }

    #[test]
    fn valid_user_token_carries_teams_and_admin_flag() {
        let platform = setup();
        let ctx = ctx_with(platform, "x");
        let token = login(&ctx, 2, 7);
        let caller = authenticate(&ctx_with(platform, &token)).unwrap();
        assert_eq!(
            caller,
            Caller::User(User {
                id: 1,
                email: "a@b.com".into(),
                teams: vec!["admin".into()],
                is_admin: true
            })
        );
    }

    #[test]
    fn stale_epoch_and_expired_tokens_are_invalid() {
        let platform = setup();
        let ctx = ctx_with(platform, "x");
        let kv = ctx.kv().unwrap();
        // Issued at epoch 2, then revoked by a new epoch.
        let stale = login(&ctx, 2, 7);
        ctx.db()
            .unwrap()
            .execute("UPDATE users SET token_epoch = 3 WHERE id = 1", &[])
            .unwrap();
        assert_eq!(
            authenticate(&ctx_with(platform, &stale)).unwrap_err(),
            ApiError::invalid_token()
        );
        let expired = login(&ctx, 3, 0);
        let key = token_key(&sha256_hex(expired.as_bytes()));
        assert!(kv.get_json::<TokenRecord>(&key).unwrap().is_some());
        assert_eq!(
            authenticate(&ctx_with(platform, &expired)).unwrap_err(),
            ApiError::invalid_token()
        );
        assert!(
            kv.get_json::<TokenRecord>(&key).unwrap().is_none(),
            "expired records are deleted when presented"
        );
    }

    #[test]
    fn app_tokens_die_with_their_app() {
        let platform = setup();
        let ctx = ctx_with(platform, "x");
        let kv = ctx.kv().unwrap();
        let (bound, _) = issue_app_token(kv, "web", Some(7)).unwrap();
        let (system, _) = issue_app_token(kv, "git-hook", None).unwrap();
        let (other_serial, _) = issue_app_token(kv, "web", Some(6)).unwrap();
        assert_eq!(
            authenticate(&ctx_with(platform, &bound)).unwrap(),
            Caller::App(AppCaller {
                app: "web".into(),
                id: Some(7)
            })
        );
        assert!(authenticate(&ctx_with(platform, &system)).is_ok());
        assert!(authenticate(&ctx_with(platform, &other_serial)).is_err());
        ctx.db()
            .unwrap()
            .execute("DELETE FROM apps WHERE name = 'web'", &[])
            .unwrap();
        assert_eq!(
            authenticate(&ctx_with(platform, &bound)).unwrap_err(),
            ApiError::invalid_token()
        );
    }

    #[test]
    fn tokens_naming_only_an_email_work_for_accounts_of_their_time_only() {
        let platform = setup();
        let ctx = ctx_with(platform, "x");
        let kv = ctx.kv().unwrap();
        let legacy = |email: &str, epoch: i64| {
            let token = crate::runtime::secrets::new_token().unwrap();
            let record = TokenRecord {
                kind: "user".into(),
                user_id: None,
                email: Some(email.into()),
                app: None,
                app_serial: None,
                epoch,
                creation: now_unix(),
                expires: now_unix() + 60,
            };
            kv.set_json(&token_key(&sha256_hex(token.as_bytes())), &record)
                .unwrap();
            token
        };
        let db = ctx.db().unwrap();
        db.execute("UPDATE users SET legacy_tokens = 1 WHERE id = 1", &[])
            .unwrap();
        assert!(authenticate(&ctx_with(platform, &legacy("a@b.com", 2))).is_ok());
        // The account is removed and the email registered again: a new id, no legacy flag.
        db.execute("DELETE FROM users WHERE id = 1", &[]).unwrap();
        db.execute(
            "INSERT INTO users (email, password_hash, token_epoch, created_at) VALUES ('a@b.com', 'h', 2, 'now')",
            &[],
        )
        .unwrap();
        assert_eq!(
            authenticate(&ctx_with(platform, &legacy("a@b.com", 2))).unwrap_err(),
            ApiError::invalid_token()
        );
    }
}
