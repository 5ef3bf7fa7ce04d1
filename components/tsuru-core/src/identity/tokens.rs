//! Token records in the key-value store (API.md 1.3, 4.2): tokens are stored only as the
//! SHA-256 of the token; user tokens carry the user's id and revocation epoch, app tokens
//! the app's id. Ids are never reused, so no token of a removed user or app works for a
//! later one of the same name (API.md 8.2). A best-effort index per user lets revocation
//! delete the records.

use crate::runtime::error::ApiResult;
use crate::runtime::kv::Kv;
use crate::runtime::secrets::{new_token, sha256_hex};
use crate::runtime::time::now_unix;
use serde::{Deserialize, Serialize};

/// App tokens live a year (API.md 1.3).
pub const APP_TOKEN_SECONDS: i64 = 365 * 86_400;

/// The most live user tokens one user holds (logins); a new one evicts the oldest.
const MAX_TOKENS_PER_USER: usize = 1000;

/// The key-value record of one token, keyed by `token:<sha256 of the token>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub kind: String,
    /// The user's id; absent from user tokens issued before ids existed (schema 4),
    /// which name only the email and are accepted for the accounts of that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    pub email: Option<String>,
    pub app: Option<String>,
    pub app_serial: Option<i64>,
    pub epoch: i64,
    pub creation: i64,
    pub expires: i64,
}

pub(crate) fn token_key(hash: &str) -> String {
    format!("token:{hash}")
}

fn user_tokens_key(user_id: i64) -> String {
    format!("user-tokens:{user_id}")
}

/// Issues a user token valid for `days`; also prunes the user's token index of records
/// that are gone or expired, so the index stays as small as the live tokens, and evicts
/// the oldest live tokens past [`MAX_TOKENS_PER_USER`].
pub fn issue_user_token(
    kv: &Kv,
    user_id: i64,
    email: &str,
    epoch: i64,
    days: i64,
) -> ApiResult<String> {
    let token = new_token()?;
    let hash = sha256_hex(token.as_bytes());
    let now = now_unix();
    let record = TokenRecord {
        kind: "user".into(),
        user_id: Some(user_id),
        email: Some(email.to_string()),
        app: None,
        app_serial: None,
        epoch,
        creation: now,
        expires: now + days * 86_400,
    };
    kv.set_json(&token_key(&hash), &record)?;
    let index_key = user_tokens_key(user_id);
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
    // Past the most live tokens a user may hold, the oldest stop working: without a
    // bound a login loop would grow the index, which every login rewrites, without end.
    let evicted = (index.len() + 1).saturating_sub(MAX_TOKENS_PER_USER);
    for old in index.drain(..evicted) {
        kv.delete(&token_key(&old))?;
    }
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
        user_id: None,
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
pub fn delete_user_token_records(kv: &Kv, user_id: i64, keep: Option<&str>) -> ApiResult<()> {
    let index_key = user_tokens_key(user_id);
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
    fn user_token_index_is_pruned_and_revocable() {
        use crate::runtime::kv::memory::MemoryKv;
        let store = MemoryKv::default();
        let kv = Kv::new(Box::new(store.clone()));
        let t1 = issue_user_token(&kv, 1, "a@b.com", 0, 7).unwrap();
        let t2 = issue_user_token(&kv, 1, "a@b.com", 0, 7).unwrap();
        let h1 = sha256_hex(t1.as_bytes());
        let h2 = sha256_hex(t2.as_bytes());
        let index: Vec<String> = kv.get_json("user-tokens:1").unwrap().unwrap();
        assert_eq!(index, vec![h1.clone(), h2.clone()]);
        // The raw token is never stored.
        assert!(store.0.borrow().keys().all(|k| !k.contains(&t1)));
        delete_user_token_records(&kv, 1, Some(&h2)).unwrap();
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h1}"))
            .unwrap()
            .is_none());
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h2}"))
            .unwrap()
            .is_some());
        // A login at a newer epoch drops records of the old epoch from the index.
        issue_user_token(&kv, 1, "a@b.com", 1, 7).unwrap();
        let index: Vec<String> = kv.get_json("user-tokens:1").unwrap().unwrap();
        assert_eq!(index.len(), 1);
        assert!(kv
            .get_json::<TokenRecord>(&format!("token:{h2}"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn login_prunes_the_index_front_up_to_the_first_live_token() {
        use crate::runtime::kv::memory::MemoryKv;
        let kv = Kv::new(Box::new(MemoryKv::default()));
        let tokens: Vec<String> = (0..4)
            .map(|_| issue_user_token(&kv, 1, "a@b.com", 0, 7).unwrap())
            .collect();
        let hashes: Vec<String> = tokens.iter().map(|t| sha256_hex(t.as_bytes())).collect();
        let key = |hash: &str| format!("token:{hash}");
        // The first token expired; the third was logged out.
        let mut expired: TokenRecord = kv.get_json(&key(&hashes[0])).unwrap().unwrap();
        expired.expires = 0;
        kv.set_json(&key(&hashes[0]), &expired).unwrap();
        delete_token(&kv, &tokens[2]).unwrap();
        let newest = sha256_hex(
            issue_user_token(&kv, 1, "a@b.com", 0, 7)
                .unwrap()
                .as_bytes(),
        );
        let index: Vec<String> = kv.get_json("user-tokens:1").unwrap().unwrap();
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

    #[test]
    fn a_user_holds_at_most_the_newest_thousand_tokens() {
        use crate::runtime::kv::memory::MemoryKv;
        let kv = Kv::new(Box::new(MemoryKv::default()));
        let hashes: Vec<String> = (0..MAX_TOKENS_PER_USER + 2)
            .map(|_| {
                sha256_hex(
                    issue_user_token(&kv, 1, "a@b.com", 0, 7)
                        .unwrap()
                        .as_bytes(),
                )
            })
            .collect();
        let index: Vec<String> = kv.get_json("user-tokens:1").unwrap().unwrap();
        assert_eq!(index, hashes[2..]);
        let record = |hash: &str| {
            kv.get_json::<TokenRecord>(&format!("token:{hash}"))
                .unwrap()
        };
        assert!(record(&hashes[0]).is_none() && record(&hashes[1]).is_none());
        assert!(record(&hashes[2]).is_some());
        // Another user's tokens are their own.
        issue_user_token(&kv, 2, "c@d.com", 0, 7).unwrap();
        assert!(record(&hashes[2]).is_some());
    }
}
