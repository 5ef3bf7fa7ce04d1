//! Authentication (API.md 1.3, 4.2): bearer tokens stored only as SHA-256 hashes in the
//! key-value store, user tokens checked against the user's revocation epoch, app tokens
//! against the app's serial, and the auth levels routes declare.

use crate::context::Ctx;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::kv::Kv;
use crate::params;
use crate::util::{new_token, now_unix, sha256_hex};
use serde::{Deserialize, Serialize};

/// App tokens live a year (API.md 1.3).
pub const APP_TOKEN_SECONDS: i64 = 365 * 86_400;

/// The auth level a route declares; checked before the body is read.
pub enum Access {
    /// The Authorization header is not read.
    None,
    /// A valid user token; an app token is 403.
    User,
    /// A valid user token of an admin; anyone else is 403.
    Admin,
    /// Any valid token; the route applies its own rule to app tokens (`app-ok`).
    AnyToken,
    /// The route checks access itself, before the body is read (registration gate).
    Custom(fn(&mut Ctx) -> ApiResult<()>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    /// Teams listing the user as a member, sorted by name.
    pub teams: Vec<String>,
    pub is_admin: bool,
}

impl User {
    pub fn in_team(&self, team: &str) -> bool {
        self.teams.iter().any(|t| t == team)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCaller {
    /// The app (or client) name the token was issued for.
    pub app: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User(User),
    App(AppCaller),
}

/// The key-value record of one token, keyed by `token:<sha256 of the token>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub kind: String,
    pub email: Option<String>,
    pub app: Option<String>,
    pub app_serial: Option<i64>,
    pub epoch: i64,
    pub creation: i64,
    pub expires: i64,
}

fn token_key(hash: &str) -> String {
    format!("token:{hash}")
}

fn user_tokens_key(email: &str) -> String {
    format!("user-tokens:{email}")
}

pub(crate) fn check_access(ctx: &mut Ctx, access: &Access) -> ApiResult<()> {
    match access {
        Access::None => Ok(()),
        Access::Custom(check) => check(ctx),
        Access::User | Access::Admin | Access::AnyToken => {
            let caller = authenticate(ctx)?;
            match (access, &caller) {
                (Access::User, Caller::App(_)) => {
                    return Err(ApiError::forbidden("This action requires a user token"))
                }
                (Access::Admin, Caller::App(_)) => return Err(ApiError::forbidden("Forbidden")),
                (Access::Admin, Caller::User(u)) if !u.is_admin => {
                    return Err(ApiError::forbidden("Forbidden"))
                }
                _ => {}
            }
            ctx.caller = Some(caller);
            Ok(())
        }
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

/// Issues a user token valid for `days`; also prunes the user's token index of records
/// that are gone or expired, so the index stays as small as the live tokens.
pub fn issue_user_token(kv: &Kv, email: &str, epoch: i64, days: i64) -> ApiResult<String> {
    let token = new_token()?;
    let hash = sha256_hex(token.as_bytes());
    let now = now_unix();
    let record = TokenRecord {
        kind: "user".into(),
        email: Some(email.to_string()),
        app: None,
        app_serial: None,
        epoch,
        creation: now,
        expires: now + days * 86_400,
    };
    kv.set_json(&token_key(&hash), &record)?;
    let index_key = user_tokens_key(email);
    let mut index = kv.get_json::<Vec<String>>(&index_key)?.unwrap_or_default();
    // The index is in issue order, so expired records are at its front: prune up to the
    // first live one (reading every record would cost each login one key-value read per
    // live token of the user). A record gone early (logout, a shorter
    // `token_expire_days`) is pruned once it reaches the front.
    let mut pruned = 0;
    for old in &index {
        match kv.get_json::<TokenRecord>(&token_key(old))? {
            Some(r) if r.expires > now && r.epoch == epoch => break,
            Some(_) => kv.delete(&token_key(old))?,
            None => {}
        }
        pruned += 1;
    }
    index.drain(..pruned);
    index.push(hash);
    kv.set_json(&index_key, &index)?;
    Ok(token)
}

/// Issues an app token: bound to the app `serial` when the app exists, else a system
/// token for any client name. Returns the token and its record.
pub fn issue_app_token(
    kv: &Kv,
    app: &str,
    serial: Option<i64>,
) -> ApiResult<(String, TokenRecord)> {
    let token = new_token()?;
    let record = store_app_token(kv, &token, app, serial)?;
    Ok((token, record))
}

/// Stores the record of an app token drawn beforehand with `util::new_token` (app
/// creation writes the token into the app's variables before storing its record).
pub fn store_app_token(
    kv: &Kv,
    token: &str,
    app: &str,
    serial: Option<i64>,
) -> ApiResult<TokenRecord> {
    let now = now_unix();
    let record = TokenRecord {
        kind: "app".into(),
        email: None,
        app: Some(app.to_string()),
        app_serial: serial,
        epoch: 0,
        creation: now,
        expires: now + APP_TOKEN_SECONDS,
    };
    kv.set_json(&token_key(&sha256_hex(token.as_bytes())), &record)?;
    Ok(record)
}

/// Deletes the record of one presented token (logout, rollback of an issued token).
pub fn delete_token(kv: &Kv, token: &str) -> ApiResult<()> {
    kv.delete(&token_key(&sha256_hex(token.as_bytes())))
}

/// Deletes the records listed in the user's token index, except `keep` (a token hash).
/// Call after the user's `token_epoch` was incremented: the epoch is what makes the
/// revocation certain; this only cleans up.
pub fn delete_user_token_records(kv: &Kv, email: &str, keep: Option<&str>) -> ApiResult<()> {
    let index_key = user_tokens_key(email);
    let hashes = kv.get_json::<Vec<String>>(&index_key)?.unwrap_or_default();
    for hash in &hashes {
        if Some(hash.as_str()) != keep {
            kv.delete(&token_key(hash))?;
        }
    }
    match keep {
        Some(hash) if hashes.iter().any(|h| h == hash) => {
            kv.set_json(&index_key, &vec![hash.to_string()])
        }
        _ => kv.delete(&index_key),
    }
}

/// Rewrites the presented token's record with a new epoch so that it alone survives a
/// revocation (password change keeps the caller logged in).
pub fn carry_token_to_epoch(kv: &Kv, token: &str, epoch: i64) -> ApiResult<()> {
    let key = token_key(&sha256_hex(token.as_bytes()));
    if let Some(mut record) = kv.get_json::<TokenRecord>(&key)? {
        record.epoch = epoch;
        kv.set_json(&key, &record)?;
    }
    Ok(())
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

    #[test]
    fn user_token_index_is_pruned_and_revocable() {
        use crate::kv::memory::MemoryKv;
        let store = MemoryKv::default();
        let kv = Kv::new(Box::new(store.clone()));
        let t1 = issue_user_token(&kv, "a@b.com", 0, 7).unwrap();
        let t2 = issue_user_token(&kv, "a@b.com", 0, 7).unwrap();
        let h1 = sha256_hex(t1.as_bytes());
        let h2 = sha256_hex(t2.as_bytes());
        let index: Vec<String> = kv.get_json("user-tokens:a@b.com").unwrap().unwrap();
        assert_eq!(index, vec![h1.clone(), h2.clone()]);
        // The raw token is never stored.
        assert!(store.0.borrow().keys().all(|k| !k.contains(&t1)));
        delete_user_token_records(&kv, "a@b.com", Some(&h2)).unwrap();
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h1}"))
            .unwrap()
            .is_none());
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h2}"))
            .unwrap()
            .is_some());
        // A login at a newer epoch drops records of the old epoch from the index.
        issue_user_token(&kv, "a@b.com", 1, 7).unwrap();
        let index: Vec<String> = kv.get_json("user-tokens:a@b.com").unwrap().unwrap();
        assert_eq!(index.len(), 1);
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h2}"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn login_prunes_the_index_front_up_to_the_first_live_token() {
        use crate::kv::memory::MemoryKv;
        let kv = Kv::new(Box::new(MemoryKv::default()));
        let tokens: Vec<String> = (0..4)
            .map(|_| issue_user_token(&kv, "a@b.com", 0, 7).unwrap())
            .collect();
        let hashes: Vec<String> = tokens.iter().map(|t| sha256_hex(t.as_bytes())).collect();
        let key = |hash: &str| format!("token:{hash}");
        // The first token expired; the third was logged out.
        let mut expired: TokenRecord = kv.get_json(&key(&hashes[0])).unwrap().unwrap();
        expired.expires = 0;
        kv.set_json(&key(&hashes[0]), &expired).unwrap();
        delete_token(&kv, &tokens[2]).unwrap();
        let newest = sha256_hex(issue_user_token(&kv, "a@b.com", 0, 7).unwrap().as_bytes());
        let index: Vec<String> = kv.get_json("user-tokens:a@b.com").unwrap().unwrap();
        assert_eq!(
            index,
            vec![
                hashes[1].clone(),
                hashes[2].clone(),
                hashes[3].clone(),
                newest
            ]
        );
        assert!(kv
            .get_json::<TokenRecord>(&key(&hashes[0]))
            .unwrap()
            .is_none());
    }
}

#[cfg(test)]
mod authenticate_tests {
    use super::*;
    use crate::context::fake::FakePlatform;
    use crate::http::Request;

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
