//! The quota ledger (API.md 3.4): a limit and the items counted against it, for a user
//! (items are app names) or an app (items are `<app>-<n>` unit ids). No quota row means
//! unlimited. Reservations happen inside the caller's transaction, so concurrent
//! requests never overbook.

use crate::params;
use crate::runtime::db::{Db, DbResult};

/// Room left in `owner`'s quota; `None` when the owner has no quota (unlimited).
pub fn available(db: &Db, owner: &str) -> DbResult<Option<i64>> {
    let row = db.query_opt(
        "SELECT q.\"limit\", (SELECT COUNT(*) FROM quota_items i WHERE i.owner = q.owner) \
         FROM quotas q WHERE q.owner = ?",
        params![owner],
    )?;
    Ok(row.map(|r| (r.int(0) - r.int(1)).max(0)))
}

pub fn add_items(db: &Db, owner: &str, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "INSERT OR IGNORE INTO quota_items (owner, item) VALUES (?, ?)",
            params![owner, item.as_str()],
        )?;
    }
    Ok(())
}

pub fn release(db: &Db, owner: &str, items: &[String]) -> DbResult<()> {
    for item in items {
        db.execute(
            "DELETE FROM quota_items WHERE owner = ? AND item = ?",
            params![owner, item.as_str()],
        )?;
    }
    Ok(())
}

/// Creates `owner`'s quota with `items` already counted.
pub fn create(db: &Db, owner: &str, limit: i64, items: &[String]) -> DbResult<()> {
    db.execute(
        "INSERT INTO quotas (owner, \"limit\") VALUES (?, ?)",
        params![owner, limit],
    )?;
    add_items(db, owner, items)
}

/// Deletes `owner`'s quota and its items.
pub fn delete(db: &Db, owner: &str) -> DbResult<()> {
    db.execute("DELETE FROM quota_items WHERE owner = ?", params![owner])?;
    db.execute("DELETE FROM quotas WHERE owner = ?", params![owner])
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
    fn available_counts_items_and_never_goes_negative() {
        let db = NativeDb::memory();
        schema::migrate(&db, &[], "now").unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), None);
        create(&db, "a@b.com", 2, &["x".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(1));
        add_items(&db, "a@b.com", &["y".to_string(), "z".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(0));
        release(&db, "a@b.com", &["x".to_string(), "y".to_string()]).unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), Some(1));
        delete(&db, "a@b.com").unwrap();
        assert_eq!(available(&db, "a@b.com").unwrap(), None);
    }
}
