//! Token records in the key-value store (API.md 1.3, 4.2): tokens are stored only as the
//! SHA-256 of the token; user tokens carry the user's id and revocation epoch, app tokens
//! the app's id. Ids are never reused, so no token of a removed user or app works for a
//! later one of the same name (API.md 8.2). Each user token also has a row in SQLite
//! (`user_tokens`, written in the login's transaction), so that revocation, expiry and
//! the per-user bound find every record to delete, whatever logins ran at once.

use crate::params;
use crate::runtime::db::{Db, Value};
use crate::runtime::error::ApiResult;
use crate::runtime::kv::Kv;
use crate::runtime::secrets::{new_token, sha256_hex};
use crate::runtime::time::now_unix;
use serde::{Deserialize, Serialize};

/// App tokens live a year (API.md 1.3).
pub const APP_TOKEN_SECONDS: i64 = 365 * 86_400;

/// The most user tokens one user holds (logins); a new one evicts the oldest.
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

/// The key-value index of a user's token hashes that logins kept before the index moved
/// to SQLite (schema 6): read-modify-write, so concurrent logins could drop entries and
/// leave records nothing would delete. Still read, to move or delete what it lists.
fn legacy_index_key(user_id: i64) -> String {
    format!("user-tokens:{user_id}")
}

/// Who a new user token is for, as login read the account.
pub struct TokenHolder<'a> {
    pub user_id: i64,
    pub email: &'a str,
    /// The account's `token_epoch` when its password was checked.
    pub epoch: i64,
    /// Whether the account may still have a key-value token list (`users.kv_token_list`).
    pub kv_token_list: bool,
}

/// The index rows a revocation deleted, for [`delete_user_token_records`].
pub struct Unindexed {
    hashes: Vec<String>,
    /// Whether the user may still have a key-value token list to honour.
    kv_token_list: bool,
}

/// Issues a user token valid for `days` and indexes it in SQLite (`user_tokens`), in
/// one transaction with `also` (the login's audit event). The same transaction drops
/// the user's expired index rows and, past [`MAX_TOKENS_PER_USER`], the oldest; their
/// records are deleted after the commit. The row comes first and the record after it,
/// then the row is read again: a revocation that committed in between took the row,
/// and its record is deleted here, so every record has its row. A process stopped in
/// between leaves at most a row without a record, which expiry and the bound remove.
/// Returns `None`, and leaves nothing, when the account was removed or its tokens
/// revoked since the password was checked.
pub fn issue_user_token(
    db: &Db,
    kv: &Kv,
    holder: &TokenHolder,
    days: i64,
    also: impl FnOnce(&Db),
) -> ApiResult<Option<String>> {
    let token = new_token()?;
    let hash = sha256_hex(token.as_bytes());
    let now = now_unix();
    let expires = now + days * 86_400;
    let record = TokenRecord {
        kind: "user".into(),
        user_id: Some(holder.user_id),
        email: Some(holder.email.to_string()),
        app: None,
        app_serial: None,
        epoch: holder.epoch,
        creation: now,
        expires,
    };
    let legacy = match holder.kv_token_list {
        true => kv.get_json::<Vec<String>>(&legacy_index_key(holder.user_id))?,
        false => None,
    };
    let indexed = db.transaction(|db| -> ApiResult<Option<Vec<String>>> {
        let inserted = db.query_opt(
            "INSERT INTO user_tokens (hash, user_id, expires) \
             SELECT ?, id, ? FROM users WHERE id = ? AND token_epoch = ? RETURNING 1",
            params![hash.as_str(), expires, holder.user_id, holder.epoch],
        )?;
        if inserted.is_none() {
            return Ok(None);
        }
        if let Some(hashes) = &legacy {
            // Their expiry is unknown without reading each record: a token issued
            // before now expires by now + `days` (unless `token_expire_days` shrank).
            let rows: Vec<Value> = hashes
                .iter()
                .flat_map(|h| {
                    [
                        Value::from(h),
                        Value::from(holder.user_id),
                        Value::from(expires),
                    ]
                })
                .collect();
            db.insert_rows(
                "INSERT OR IGNORE INTO user_tokens (hash, user_id, expires) VALUES",
                3,
                &rows,
                "",
            )?;
        }
        if holder.kv_token_list {
            db.execute(
                "UPDATE users SET kv_token_list = 0 WHERE id = ?",
                params![holder.user_id],
            )?;
        }
        let dropped = db.query(
            "DELETE FROM user_tokens WHERE user_id = ?1 AND hash <> ?2 AND (expires <= ?3 \
             OR hash IN (SELECT hash FROM user_tokens WHERE user_id = ?1 AND hash <> ?2 \
             ORDER BY expires DESC LIMIT -1 OFFSET ?4)) RETURNING hash",
            params![
                holder.user_id,
                hash.as_str(),
                now,
                MAX_TOKENS_PER_USER as i64 - 1
            ],
        )?;
        also(db);
        Ok(Some(dropped.iter().map(|r| r.text(0)).collect()))
    });
    let Some(dropped) = indexed? else {
        return Ok(None);
    };
    let key = token_key(&hash);
    kv.set_json(&key, &record)?;
    let revoked = !db.exists(
        "SELECT 1 FROM user_tokens WHERE hash = ?",
        params![hash.as_str()],
    )?;
    if revoked {
        kv.delete(&key)?;
    }
    // Committed with the row, whatever became of it since: a revocation no longer sees
    // the dropped rows or the moved list.
    if legacy.is_some() {
        kv.delete(&legacy_index_key(holder.user_id))?;
    }
    for old in dropped {
        kv.delete(&token_key(&old))?;
    }
    Ok((!revoked).then_some(token))
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

/// Deletes the index rows of the user's tokens, except `keep` (a token hash). Call in
/// the transaction that increments the user's `token_epoch` (the epoch is what makes
/// the revocation certain), before the user's row is removed, then pass the result to
/// [`delete_user_token_records`] after the commit.
pub fn unindex_user_tokens(db: &Db, user_id: i64, keep: Option<&str>) -> ApiResult<Unindexed> {
    let rows = db.query(
        "DELETE FROM user_tokens WHERE user_id = ? AND hash IS NOT ? RETURNING hash",
        params![user_id, keep],
    )?;
    let kv_token_list = db.exists(
        "SELECT 1 FROM users WHERE id = ? AND kv_token_list = 1",
        params![user_id],
    )?;
    Ok(Unindexed {
        hashes: rows.iter().map(|r| r.text(0)).collect(),
        kv_token_list,
    })
}

/// Deletes the records of the rows [`unindex_user_tokens`] deleted, and those listed in
/// a key-value index left from before the index moved to SQLite, except `keep`, which
/// stays listed there until the user's next login moves it.
pub fn delete_user_token_records(
    kv: &Kv,
    user_id: i64,
    unindexed: &Unindexed,
    keep: Option<&str>,
) -> ApiResult<()> {
    for hash in &unindexed.hashes {
        kv.delete(&token_key(hash))?;
    }
    if !unindexed.kv_token_list {
        return Ok(());
    }
    let index_key = legacy_index_key(user_id);
    let Some(legacy) = kv.get_json::<Vec<String>>(&index_key)? else {
        return Ok(());
    };
    for hash in &legacy {
        if Some(hash.as_str()) != keep {
            kv.delete(&token_key(hash))?;
        }
    }
    match keep {
        Some(hash) if legacy.iter().any(|h| h == hash) => {
            kv.set_json(&index_key, &vec![hash.to_string()])
        }
        _ => kv.delete(&index_key),
    }
}

/// Removes the index row of one token (logout). A token without one (an app token)
/// changes nothing.
pub fn unindex_token(db: &Db, token: &str) -> ApiResult<()> {
    db.write(
        "DELETE FROM user_tokens WHERE hash = ?",
        params![sha256_hex(token.as_bytes())],
    )?;
    Ok(())
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
    use crate::runtime::db::native::texts;
    use crate::runtime::kv::memory::MemoryKv;
    use crate::runtime::schema::test_db_with_apps;

    /// A database with user 1 (`a@b.com`, epoch 0), and an empty key-value store.
    fn stores() -> (Db, Kv, MemoryKv) {
        let db = test_db_with_apps(&[]);
        db.execute(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'a@b.com', 'h', 'now')",
            &[],
        )
        .unwrap();
        let store = MemoryKv::default();
        (db, Kv::new(Box::new(store.clone())), store)
    }

    const HOLDER: TokenHolder = TokenHolder {
        user_id: 1,
        email: "a@b.com",
        epoch: 0,
        kv_token_list: false,
    };

    fn login(db: &Db, kv: &Kv) -> String {
        let token = issue_user_token(db, kv, &HOLDER, 7, |_| {})
            .unwrap()
            .unwrap();
        sha256_hex(token.as_bytes())
    }

    fn record(kv: &Kv, hash: &str) -> Option<TokenRecord> {
        kv.get_json(&token_key(hash)).unwrap()
    }

    fn indexed(db: &Db) -> Vec<String> {
        texts(db, "SELECT hash FROM user_tokens ORDER BY rowid", &[])
    }

    #[test]
    fn a_login_indexes_its_token_and_a_revocation_deletes_all_but_the_kept_one() {
        let (db, kv, store) = stores();
        let token = issue_user_token(&db, &kv, &HOLDER, 7, |_| {})
            .unwrap()
            .unwrap();
        let h1 = sha256_hex(token.as_bytes());
        let h2 = login(&db, &kv);
        assert_eq!(indexed(&db), [h1.clone(), h2.clone()]);
        // The raw token is never stored.
        assert!(store.0.borrow().keys().all(|k| !k.contains(&token)));
        let revoked = unindex_user_tokens(&db, 1, Some(&h2)).unwrap();
        assert_eq!(revoked.hashes, std::slice::from_ref(&h1));
        delete_user_token_records(&kv, 1, &revoked, Some(&h2)).unwrap();
        assert!(record(&kv, &h1).is_none());
        assert!(record(&kv, &h2).is_some());
        assert_eq!(indexed(&db), std::slice::from_ref(&h2));
        // Logging out removes the row too.
        unindex_token(&db, &token).unwrap();
        assert_eq!(indexed(&db), [h2]);
    }

    #[test]
    fn a_login_into_a_changed_account_leaves_nothing() {
        let (db, kv, store) = stores();
        db.execute("UPDATE users SET token_epoch = 1", &[]).unwrap();
        let issued = issue_user_token(&db, &kv, &HOLDER, 7, |_| panic!("no event")).unwrap();
        assert_eq!(issued, None);
        assert!(indexed(&db).is_empty());
        assert!(store.0.borrow().is_empty(), "its record is deleted again");
    }

    /// A store that runs `before_set` before each set: a revocation racing the login.
    struct RacedKv {
        store: MemoryKv,
        before_set: Box<dyn Fn()>,
    }

    impl crate::runtime::kv::KvBackend for RacedKv {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.store.get(key)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
            (self.before_set)();
            self.store.set(key, value)
        }
        fn delete(&self, key: &str) -> Result<(), String> {
            self.store.delete(key)
        }
    }

    /// A login of user 1 over `store` that a revocation overtakes: it commits after the
    /// login's row and deletes the records of the rows it took (the login's own, only)
    /// before the login has written its record.
    fn raced_login(db: &std::rc::Rc<Db>, store: &MemoryKv) -> Option<String> {
        let revoking = db.clone();
        let kv = Kv::new(Box::new(RacedKv {
            store: store.clone(),
            before_set: Box::new(move || {
                let revoked = unindex_user_tokens(&revoking, 1, None).unwrap();
                assert_eq!(revoked.hashes.len(), 1, "only the login's own row is left");
            }),
        }));
        issue_user_token(db, &kv, &HOLDER, 7, |_| {}).unwrap()
    }

    #[test]
    fn a_revocation_between_the_row_and_the_record_leaves_no_record() {
        let (db, _, _) = stores();
        let db = std::rc::Rc::new(db);
        let store = MemoryKv::default();
        assert_eq!(raced_login(&db, &store), None);
        assert!(indexed(&db).is_empty());
        assert!(store.0.borrow().is_empty(), "its record is deleted");
    }

    /// The rows a login drops (expired, past the bound) lose their records even when a
    /// revocation takes the login's own row: it can no longer see them.
    #[test]
    fn a_revoked_login_still_deletes_the_records_of_the_rows_it_dropped() {
        use crate::runtime::kv::KvBackend;
        let (db, _, _) = stores();
        let db = std::rc::Rc::new(db);
        let store = MemoryKv::default();
        db.execute(
            "INSERT INTO user_tokens (hash, user_id, expires) VALUES ('old', 1, 0)",
            &[],
        )
        .unwrap();
        store.set(&token_key("old"), b"{}").unwrap();
        assert_eq!(raced_login(&db, &store), None);
        assert!(indexed(&db).is_empty());
        assert!(store.0.borrow().is_empty(), "no record is left behind");
    }

    #[test]
    fn a_login_drops_expired_rows_and_their_records() {
        let (db, kv, _) = stores();
        let hashes: Vec<String> = (0..3).map(|_| login(&db, &kv)).collect();
        db.execute(
            "UPDATE user_tokens SET expires = 0 WHERE hash = ?",
            params![hashes[1].as_str()],
        )
        .unwrap();
        let newest = login(&db, &kv);
        assert_eq!(indexed(&db), [hashes[0].clone(), hashes[2].clone(), newest]);
        assert!(record(&kv, &hashes[1]).is_none());
        assert!(record(&kv, &hashes[0]).is_some());
    }

    #[test]
    fn a_user_holds_at_most_the_newest_thousand_tokens() {
        let (db, kv, _) = stores();
        let hashes: Vec<String> = (0..MAX_TOKENS_PER_USER + 2)
            .map(|i| {
                let hash = login(&db, &kv);
                // Issued a second apart, as logins are in order.
                db.execute(
                    "UPDATE user_tokens SET expires = expires + ? WHERE hash = ?",
                    params![i as i64, hash.as_str()],
                )
                .unwrap();
                hash
            })
            .collect();
        assert_eq!(indexed(&db), hashes[2..]);
        assert!(record(&kv, &hashes[0]).is_none() && record(&kv, &hashes[1]).is_none());
        assert!(record(&kv, &hashes[2]).is_some());
        // Another user's tokens are their own.
        db.execute(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (2, 'c@d.com', 'h', 'now')",
            &[],
        )
        .unwrap();
        let other = TokenHolder {
            user_id: 2,
            email: "c@d.com",
            epoch: 0,
            kv_token_list: false,
        };
        issue_user_token(&db, &kv, &other, 7, |_| {})
            .unwrap()
            .unwrap();
        assert!(record(&kv, &hashes[2]).is_some());
    }

    #[test]
    fn a_key_value_index_from_before_is_moved_at_login_and_honoured_by_revocation() {
        let (db, kv, _) = stores();
        let old: Vec<String> = (0..3).map(|i| format!("{i:064x}")).collect();
        let newest_record = record(&kv, &login(&db, &kv)).unwrap();
        db.execute("DELETE FROM user_tokens", &[]).unwrap();
        for hash in &old {
            kv.set_json(&token_key(hash), &newest_record).unwrap();
        }
        kv.set_json("user-tokens:1", &old).unwrap();
        let listed = || kv.get_json::<Vec<String>>("user-tokens:1").unwrap();
        let flagged = || texts(&db, "SELECT kv_token_list FROM users WHERE id = 1", &[]);

        // An account not flagged by migration 6 never has a list: it is not looked up.
        let unflagged = login(&db, &kv);
        assert_eq!(indexed(&db), std::slice::from_ref(&unflagged));
        assert_eq!(listed(), Some(old.clone()));

        db.execute("UPDATE users SET kv_token_list = 1", &[])
            .unwrap();
        let holder = TokenHolder {
            kv_token_list: true,
            ..HOLDER
        };
        let newest = sha256_hex(
            issue_user_token(&db, &kv, &holder, 7, |_| {})
                .unwrap()
                .unwrap()
                .as_bytes(),
        );
        let mut expected = vec![unflagged, newest.clone()];
        expected.extend(old.iter().cloned());
        assert_eq!(indexed(&db), expected);
        assert_eq!(listed(), None);
        assert_eq!(flagged(), ["0"], "moved once");

        // A revocation before the user's next login finds the old list's records too.
        db.execute("UPDATE users SET kv_token_list = 1", &[])
            .unwrap();
        kv.set_json("user-tokens:1", &old).unwrap();
        let revoked = unindex_user_tokens(&db, 1, Some(&old[1])).unwrap();
        delete_user_token_records(&kv, 1, &revoked, Some(&old[1])).unwrap();
        assert!(record(&kv, &old[0]).is_none() && record(&kv, &newest).is_none());
        assert!(record(&kv, &old[1]).is_some());
        assert_eq!(listed(), Some(vec![old[1].clone()]));
    }
}
