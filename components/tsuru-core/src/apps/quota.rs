//! The quota ledger (API.md 3.4). A user's quota counts the apps the user owns; an
//! app's quota counts the unit numbers reserved against it (`<app>-<n>` items, reserved
//! before the provisioner is called). No quota row means unlimited. Every check and
//! reservation happens inside the caller's transaction, so concurrent requests never
//! overbook; a quota goes with its user or app (foreign keys).

use crate::params;
use crate::runtime::db::{Db, DbResult, Row, Value};

/// Room left in the app quota of the user whose id is `user` (an SQL expression), apps
/// matching `not_counted` left out, as a column to select (NULL: no quota, unlimited).
pub fn user_room_column(user: &str, not_counted: &str) -> String {
    format!(
        "(SELECT q.\"limit\" - (SELECT COUNT(*) FROM apps a WHERE a.owner_id = q.user_id \
         AND NOT ({not_counted})) FROM quotas q WHERE q.user_id = {user})"
    )
}

/// Room left in the user's app quota; `None` when the user has none (unlimited).
pub fn user_room(db: &Db, user_id: i64) -> DbResult<Option<i64>> {
    let room = db.query_opt(
        &format!("SELECT {}", user_room_column("?", "0")),
        params![user_id],
    )?;
    Ok(room.and_then(|r| r.opt_int(0)).map(|room| room.max(0)))
}

/// An app's unit quota as two columns to select from `apps a` (`, ...`): the quota's id
/// and the room left, both NULL when the app has none. Selected with the app itself, so
/// that a write checking the quota reads it in the same statement as the app.
pub const APP_ROOM_COLUMNS: &str = ", (SELECT q.id FROM quotas q WHERE q.app_id = a.id), \
     (SELECT q.\"limit\" - (SELECT COUNT(*) FROM quota_items i WHERE i.quota_id = q.id) \
     FROM quotas q WHERE q.app_id = a.id)";

/// Reads [`APP_ROOM_COLUMNS`] from `column` on: the quota's id and the room left (never
/// below 0); `None` when the app has no quota (unlimited).
pub fn app_room_from(row: &Row, column: usize) -> Option<(i64, i64)> {
    row.opt_int(column)
        .map(|quota| (quota, row.int(column + 1).max(0)))
}

/// Creates the app's unit quota with `items` already counted.
pub fn create_for_app(db: &Db, app_id: i64, limit: i64, items: &[String]) -> DbResult<()> {
    let quota = db
        .query(
            "INSERT INTO quotas (app_id, \"limit\") VALUES (?, ?) RETURNING id",
            params![app_id, limit],
        )?
        .first()
        .map_or(0, |r| r.int(0));
    reserve(db, quota, items)
}

/// Counts `items` against quota `quota`, in one statement however many there are (a
/// write lock is held for a bounded number of statements).
pub fn reserve(db: &Db, quota: i64, items: &[String]) -> DbResult<()> {
    let values: Vec<Value> = items
        .iter()
        .flat_map(|item| [Value::from(quota), Value::from(item)])
        .collect();
    db.insert_rows(
        "INSERT OR IGNORE INTO quota_items (quota_id, item) VALUES",
        2,
        &values,
        "",
    )
}

/// Releases `items` from the app's quota, if it has one, in one statement (items are
/// `<app>-<n>`, plain text a JSON array carries unchanged).
pub fn release(db: &Db, app_id: i64, items: &[String]) -> DbResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    db.execute(
        "DELETE FROM quota_items WHERE quota_id = (SELECT id FROM quotas WHERE app_id = ?) \
         AND item IN (SELECT value FROM json_each(?))",
        params![app_id, json_list(items)],
    )
}

/// `items` as a JSON array, for `json_each`.
fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// The quota item of unit `number` of `app`.
pub fn unit_item(app: &str, number: i64) -> String {
    format!("{app}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::schema;

    fn app_room(db: &Db, app_id: i64) -> DbResult<Option<(i64, i64)>> {
        let row = db.query_opt(
            &format!("SELECT 0{APP_ROOM_COLUMNS} FROM apps a WHERE a.id = ?"),
            params![app_id],
        )?;
        Ok(row.and_then(|row| app_room_from(&row, 1)))
    }

    #[test]
    fn room_counts_items_and_never_goes_negative() {
        let db = schema::test_db_with_apps(&[]);
        db.execute(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'a@b.com', 'h', 'now')",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO apps (id, name, platform, owner, owner_id, state, created_at) \
             VALUES (5, 'x', 'python', 'a@b.com', 1, 'ready', 'now')",
            &[],
        )
        .unwrap();
        assert_eq!(user_room(&db, 1).unwrap(), None);
        db.execute("INSERT INTO quotas (user_id, \"limit\") VALUES (1, 2)", &[])
            .unwrap();
        assert_eq!(user_room(&db, 1).unwrap(), Some(1));
        assert_eq!(app_room(&db, 5).unwrap(), None);
        create_for_app(&db, 5, 2, &["x-0".into()]).unwrap();
        let (quota, room) = app_room(&db, 5).unwrap().unwrap();
        assert_eq!(room, 1);
        reserve(&db, quota, &["x-1".into(), "x-2".into()]).unwrap();
        assert_eq!(app_room(&db, 5).unwrap().unwrap().1, 0);
        release(&db, 5, &["x-0".into(), "x-1".into()]).unwrap();
        assert_eq!(app_room(&db, 5).unwrap().unwrap().1, 1);
        // Many items, any text, in one statement each way; nothing to do costs nothing.
        let many: Vec<String> = (0..150).map(|n| format!("x-\"{n}'\u{e9}")).collect();
        reserve(&db, quota, &many).unwrap();
        reserve(&db, quota, &[]).unwrap();
        let stored = db.query("SELECT item FROM quota_items", &[]).unwrap();
        assert_eq!(stored.len(), 151);
        assert!(stored.iter().any(|r| r.text(0) == many[149]));
        assert_eq!(app_room(&db, 5).unwrap().unwrap().1, 0);
        release(&db, 5, &many[..149]).unwrap();
        release(&db, 5, &[]).unwrap();
        let left: Vec<String> = db
            .query("SELECT item FROM quota_items ORDER BY item", &[])
            .unwrap()
            .iter()
            .map(|r| r.text(0))
            .collect();
        assert_eq!(left, [many[149].clone(), "x-2".into()]);
        // The quotas go with the app and the user.
        db.execute("DELETE FROM apps WHERE id = 5", &[]).unwrap();
        assert_eq!(app_room(&db, 5).unwrap(), None);
        assert_eq!(user_room(&db, 1).unwrap(), Some(2));
        db.execute("DELETE FROM users WHERE id = 1", &[]).unwrap();
        assert_eq!(user_room(&db, 1).unwrap(), None);
        assert!(!db.exists("SELECT 1 FROM quota_items", &[]).unwrap());
    }
}
