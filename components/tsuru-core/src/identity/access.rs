//! Access checks (API.md 1.3): the auth levels routes declare, and authentication of the
//! request's bearer token against its key-value record (user tokens against the user's
//! revocation epoch, app tokens against the app's serial).

use crate::identity::tokens::{token_key, TokenRecord};
use crate::params;
use crate::runtime::caller::{AppCaller, Caller, User};
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::router::{Access, TokenUse};
use crate::runtime::secrets::sha256_hex;
use crate::runtime::time::now_unix;

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

/// Resolves the request's token to a caller, or answers the exact 401 of API.md 1.3.
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
            let email = record.email.ok_or_else(ApiError::invalid_token)?;
            let user = load_user(db, &email, &ctx.config.admin_team())?
                .filter(|(_, epoch)| *epoch == record.epoch)
                .ok_or_else(ApiError::invalid_token)?;
            Ok(Caller::User(user.0))
        }
        "app" => {
            let app = record.app.ok_or_else(ApiError::invalid_token)?;
            if let Some(serial) = record.app_serial {
                let alive = db.exists(
                    "SELECT 1 FROM apps WHERE name = ? AND serial = ?",
                    params![app.as_str(), serial],
                )?;
                if !alive {
                    return Err(ApiError::invalid_token());
                }
            }
            Ok(Caller::App(AppCaller { app }))
        }
        _ => Err(ApiError::invalid_token()),
    }
}

/// Loads a user with their teams and admin flag, and their current token epoch.
pub fn load_user(
    db: &Db,
    email: &str,
    admin_team: &Option<String>,
) -> ApiResult<Option<(User, i64)>> {
    let rows = db.query(
        "SELECT u.token_epoch, m.team FROM users u LEFT JOIN team_members m ON m.email = u.email \
         WHERE u.email = ? ORDER BY m.team",
        params![email],
    )?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let epoch = first.int(0);
    let teams: Vec<String> = rows.iter().filter_map(|r| r.opt_text(1)).collect();
    let is_admin = admin_team
        .as_ref()
        .is_some_and(|admin| teams.iter().any(|t| t == admin));
    Ok(Some((
        User {
            email: email.to_string(),
            teams,
            is_admin,
        },
        epoch,
    )))
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
    use crate::identity::tokens::{issue_app_token, issue_user_token};
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

    fn setup() -> &'static FakePlatform {
        let platform = FakePlatform::leaked(&[("admin_team", "admin"), ("platforms", "python")]);
        let ctx = ctx_with(platform, "x");
        let db = ctx.db().unwrap();
        for sql in [
            "INSERT INTO users (email, password_hash, token_epoch, created_at) VALUES ('a@b.com', 'h', 2, 'now')",
            "INSERT INTO teams (name, created_at) VALUES ('admin', 'now')",
            "INSERT INTO team_members (team, email) VALUES ('admin', 'a@b.com')",
            "INSERT INTO apps (name, serial, platform, owner, state, created_at) VALUES ('web', 7, 'python', 'a@b.com', 'ready', 'now')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        platform
    }

    #[test]
    fn valid_user_token_carries_teams_and_admin_flag() {
        let platform = setup();
        let ctx = ctx_with(platform, "x");
        let token = issue_user_token(ctx.kv().unwrap(), "a@b.com", 2, 7).unwrap();
        let caller = authenticate(&ctx_with(platform, &token)).unwrap();
        assert_eq!(
            caller,
            Caller::User(User {
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
        let stale = issue_user_token(kv, "a@b.com", 1, 7).unwrap();
        assert_eq!(
            authenticate(&ctx_with(platform, &stale)).unwrap_err(),
            ApiError::invalid_token()
        );
        let expired = issue_user_token(kv, "a@b.com", 2, 0).unwrap();
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
            Caller::App(AppCaller { app: "web".into() })
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
}
