//! The versioned schema. Migration N is applied once, in one transaction, by the first
//! request that finds `PRAGMA user_version` below N; every later request pays one PRAGMA.
//! Never edit a released migration: append a new one.

use crate::params;
use crate::runtime::db::{Db, DbResult};

/// Each migration is a list of single statements (Spin's SQLite runs one per call).
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    "CREATE TABLE users (email TEXT PRIMARY KEY, password_hash TEXT NOT NULL, token_epoch INTEGER NOT NULL DEFAULT 0, next_key INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL)",
    "CREATE TABLE user_keys (email TEXT NOT NULL, name TEXT NOT NULL, content TEXT NOT NULL, PRIMARY KEY (email, name), UNIQUE (email, content))",
    "CREATE TABLE teams (name TEXT PRIMARY KEY, created_at TEXT NOT NULL)",
    "CREATE TABLE team_members (team TEXT NOT NULL, email TEXT NOT NULL, PRIMARY KEY (team, email))",
    "CREATE INDEX team_members_email ON team_members (email)",
    "CREATE TABLE platforms (name TEXT PRIMARY KEY)",
    "CREATE TABLE apps (name TEXT PRIMARY KEY, serial INTEGER NOT NULL UNIQUE, platform TEXT NOT NULL REFERENCES platforms (name), ip TEXT NOT NULL DEFAULT '', cname TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL, state TEXT NOT NULL, next_unit INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
    "CREATE UNIQUE INDEX apps_cname ON apps (cname) WHERE cname <> ''",
    "CREATE INDEX apps_platform ON apps (platform)",
    "CREATE TABLE app_serials (id INTEGER PRIMARY KEY AUTOINCREMENT)",
    "CREATE TABLE app_teams (app TEXT NOT NULL, team TEXT NOT NULL, PRIMARY KEY (app, team))",
    "CREATE INDEX app_teams_team ON app_teams (team)",
    "CREATE TABLE units (app TEXT NOT NULL, number INTEGER NOT NULL, name TEXT NOT NULL UNIQUE, ip TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, quota_item TEXT, PRIMARY KEY (app, number))",
    "CREATE TABLE env_vars (app TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, public INTEGER NOT NULL, instance TEXT, PRIMARY KEY (app, name))",
    "CREATE INDEX env_vars_instance ON env_vars (app, instance)",
    "CREATE TABLE services (id TEXT PRIMARY KEY, username TEXT NOT NULL DEFAULT '', password TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL DEFAULT '', restricted INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
    "CREATE TABLE service_endpoints (service TEXT NOT NULL, env TEXT NOT NULL, url TEXT NOT NULL, PRIMARY KEY (service, env))",
    "CREATE TABLE service_owner_teams (service TEXT NOT NULL, team TEXT NOT NULL, PRIMARY KEY (service, team))",
    "CREATE INDEX service_owner_teams_team ON service_owner_teams (team)",
    "CREATE TABLE service_teams (service TEXT NOT NULL, team TEXT NOT NULL, PRIMARY KEY (service, team))",
    "CREATE INDEX service_teams_team ON service_teams (team)",
    "CREATE TABLE service_instances (name TEXT PRIMARY KEY, service TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX service_instances_service ON service_instances (service)",
    "CREATE TABLE instance_teams (instance TEXT NOT NULL, team TEXT NOT NULL, PRIMARY KEY (instance, team))",
    "CREATE INDEX instance_teams_team ON instance_teams (team)",
    "CREATE TABLE instance_apps (instance TEXT NOT NULL, app TEXT NOT NULL, PRIMARY KEY (instance, app))",
    "CREATE INDEX instance_apps_app ON instance_apps (app)",
    "CREATE TABLE quotas (owner TEXT PRIMARY KEY, \"limit\" INTEGER NOT NULL)",
    "CREATE TABLE quota_items (owner TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (owner, item))",
    "CREATE TABLE app_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL)",
    "CREATE INDEX app_logs_app ON app_logs (app, id)",
    "CREATE TABLE audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, date TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, extra TEXT NOT NULL DEFAULT '{}')",
], &[
    // 2: a user's apps are their quota items when no quota row exists (API.md 3.4).
    "CREATE INDEX apps_owner ON apps (owner)",
], &[
    // 3: an app reads only log entries newer than its creation (API.md 7.6). Comparing
    // entry ids instead of second-precision dates keeps an app re-created within the
    // same second from reading its predecessor's entries.
    "ALTER TABLE apps ADD COLUMN logs_after INTEGER NOT NULL DEFAULT 0",
    "UPDATE apps SET logs_after = COALESCE((SELECT MAX(l.id) FROM app_logs l \
     WHERE l.app = apps.name AND l.date < apps.created_at), 0)",
]];

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date. `seed_platforms` are inserted when migration 1 runs
/// (API.md 1.7: platforms are seeded once, when the schema is created).
pub fn migrate(db: &Db, seed_platforms: &[String], now: &str) -> DbResult<()> {
    if is_current(db)? {
        return Ok(());
    }
    // Write-ahead logging lets readers and the writer proceed together. It is a setting
    // of the database file, made once; a database that refuses it (a remote libSQL)
    // keeps its own mode.
    if let Err(e) = db.execute("PRAGMA journal_mode = WAL", &[]) {
        eprintln!("journal_mode WAL not set: {e}");
    }
    db.transaction(|db| {
        // Another request may have migrated while this one waited for the write lock.
        let from = current_version(db)?;
        for (index, statements) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let version = index as i64 + 1;
            for statement in statements.iter() {
                db.execute(statement, &[])?;
            }
            if version == 1 {
                for platform in seed_platforms {
                    db.execute(
                        "INSERT OR IGNORE INTO platforms (name) VALUES (?)",
                        params![platform],
                    )?;
                }
            }
            db.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                params![version, now],
            )?;
            // PRAGMA takes no parameters; `version` is a compile-time count.
            db.execute(&format!("PRAGMA user_version = {version}"), &[])?;
        }
        Ok(())
    })
}

/// Whether every migration has been applied (one `PRAGMA user_version`).
pub fn is_current(db: &Db) -> DbResult<bool> {
    Ok(current_version(db)? >= LATEST_VERSION)
}

fn current_version(db: &Db) -> DbResult<i64> {
    Ok(db
        .query_opt("PRAGMA user_version", &[])?
        .map_or(0, |r| r.int(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;

    #[test]
    fn migration_runs_once_and_seeds_platforms() {
        let db = NativeDb::memory();
        let seed = vec!["python".to_string(), "go".to_string()];
        migrate(&db, &seed, "2014-03-01T12:00:00Z").unwrap();
        migrate(&db, &["ruby".to_string()], "2014-03-01T12:00:00Z").unwrap();
        let names: Vec<String> = db
            .query("SELECT name FROM platforms ORDER BY name", &[])
            .unwrap()
            .iter()
            .map(|r| r.text(0))
            .collect();
        assert_eq!(names, vec!["go", "python"]);
        let version = db.query_opt("PRAGMA user_version", &[]).unwrap().unwrap();
        assert_eq!(version.int(0), LATEST_VERSION);
    }
}
