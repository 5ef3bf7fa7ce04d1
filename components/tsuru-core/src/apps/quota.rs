//! The quota ledger (API.md 3.4). A user's quota counts the apps the user owns; an
//! app's quota counts the unit numbers reserved against it (`<app>-<n>` items, reserved
//! before the provisioner is called). No quota row means unlimited. Every check and
//! reservation happens inside the caller's transaction, so concurrent requests never
//! overbook; a quota goes with its user or app (foreign keys).

use crate::params;
use crate::runtime::db::{Db, DbResult};

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

/// An app's unit quota: its id and the room left; `None` when the app has none.
pub fn app_room(db: &Db, app_id: i64) -> DbResult<Option<(i64, i64)>> {
    let row = db.query_opt(
        "SELECT q.id, q.\"limit\" - (SELECT COUNT(*) FROM quota_items i WHERE i.quota_id = q.id) \
         FROM quotas q WHERE q.app_id = ?",
        params![app_id],
    )?;
    Ok(row.map(|r| (r.int(0), r.int(1).max(0))))
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

/// Counts `items` against quota `quota`.
pub fn reserve(db: &Db, quota: i64, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "INSERT OR IGNORE INTO quota_items (quota_id, item) VALUES (?, ?)",
            params![quota, item.as_str()],
        )?;
    }
    Ok(())
}

/// Releases `items` from the app's quota, if it has one.
pub fn release(db: &Db, app_id: i64, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "DELETE FROM quota_items WHERE item = ? \
             AND quota_id = (SELECT id FROM quotas WHERE app_id = ?)",
            params![item.as_str(), app_id],
        )?;
    }
    Ok(())
}

/// The quota item of unit `number` of `app`.
pub fn unit_item(app: &str, number: i64) -> String {
    format!("{app}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;
    use crate::runtime::schema;

    #[test]
    fn room_counts_items_and_never_goes_negative() {
        let db = NativeDb::memory();
        schema::migrate(&db, &|| vec!["python".into()], "now").unwrap();
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
        // The quotas go with the app and the user.
        db.execute("DELETE FROM apps WHERE id = 5", &[]).unwrap();
        assert_eq!(app_room(&db, 5).unwrap(), None);
        assert_eq!(user_room(&db, 1).unwrap(), Some(2));
        db.execute("DELETE FROM users WHERE id = 1", &[]).unwrap();
        assert_eq!(user_room(&db, 1).unwrap(), None);
        assert!(!db.exists("SELECT 1 FROM quota_items", &[]).unwrap());
    }
}
