//! The versioned schema. Migration N is applied once, in one transaction, by the first
//! request that finds `PRAGMA user_version` below N. A request learns the version from
//! its first statement, which reads `pragma_user_version` along with its own data
//! (`Db::query_first`), so a current schema costs no round trip of its own.
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
], &[
    // 4: surrogate ids that a re-created name never reuses, and foreign keys that take
    // every child row with its parent (API.md 8.1, 8.2). No request turns them on:
    // both databases Spin offers enforce them by default (rusqlite's bundled SQLite is
    // built with SQLITE_DEFAULT_FOREIGN_KEYS=1; sqld 0.24.9 answers `PRAGMA
    // foreign_keys` with 1); `a_default_connection_enforces_the_foreign_keys` checks.
    // Each table is rebuilt from its version-3 rows; rows that already pointed at a
    // missing parent are dropped.
    // Apps keep their serial as id, so app tokens issued before stay valid; users get
    // `legacy_tokens` so their tokens issued before (which name an email, not an id)
    // stay valid, while an account registered later never accepts them.
    "ALTER TABLE users RENAME TO v3_users",
    "ALTER TABLE user_keys RENAME TO v3_user_keys",
    "ALTER TABLE teams RENAME TO v3_teams",
    "ALTER TABLE team_members RENAME TO v3_team_members",
    "ALTER TABLE apps RENAME TO v3_apps",
    "ALTER TABLE app_teams RENAME TO v3_app_teams",
    "ALTER TABLE units RENAME TO v3_units",
    "ALTER TABLE env_vars RENAME TO v3_env_vars",
    "ALTER TABLE services RENAME TO v3_services",
    "ALTER TABLE service_endpoints RENAME TO v3_service_endpoints",
    "ALTER TABLE service_owner_teams RENAME TO v3_service_owner_teams",
    "ALTER TABLE service_teams RENAME TO v3_service_teams",
    "ALTER TABLE service_instances RENAME TO v3_service_instances",
    "ALTER TABLE instance_teams RENAME TO v3_instance_teams",
    "ALTER TABLE instance_apps RENAME TO v3_instance_apps",
    "ALTER TABLE quotas RENAME TO v3_quotas",
    "ALTER TABLE quota_items RENAME TO v3_quota_items",
    "ALTER TABLE app_logs RENAME TO v3_app_logs",
    "DROP INDEX team_members_email",
    "DROP INDEX apps_cname",
    "DROP INDEX apps_platform",
    "DROP INDEX apps_owner",
    "DROP INDEX app_teams_team",
    "DROP INDEX env_vars_instance",
    "DROP INDEX service_owner_teams_team",
    "DROP INDEX service_teams_team",
    "DROP INDEX service_instances_service",
    "DROP INDEX instance_teams_team",
    "DROP INDEX instance_apps_app",
    "DROP INDEX app_logs_app",
    // Users and teams.
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, \
     password_hash TEXT NOT NULL, token_epoch INTEGER NOT NULL DEFAULT 0, \
     next_key INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, \
     legacy_tokens INTEGER NOT NULL DEFAULT 0, reset_hash TEXT, reset_created INTEGER, \
     reset_mailed INTEGER)",
    "INSERT INTO users (email, password_hash, token_epoch, next_key, created_at, legacy_tokens) \
     SELECT email, password_hash, token_epoch, next_key, created_at, 1 FROM v3_users \
     ORDER BY created_at, email",
    "CREATE TABLE user_keys (user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
     name TEXT NOT NULL, content TEXT NOT NULL, PRIMARY KEY (user_id, name), \
     UNIQUE (user_id, content))",
    "INSERT INTO user_keys (user_id, name, content) SELECT u.id, k.name, k.content \
     FROM v3_user_keys k JOIN users u ON u.email = k.email",
    "CREATE TABLE teams (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, \
     created_at TEXT NOT NULL)",
    "INSERT INTO teams (name, created_at) SELECT name, created_at FROM v3_teams ORDER BY name",
    "CREATE TABLE team_members (team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE, \
     user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
     PRIMARY KEY (team_id, user_id))",
    "CREATE INDEX team_members_user ON team_members (user_id)",
    "INSERT INTO team_members (team_id, user_id) SELECT t.id, u.id FROM v3_team_members m \
     JOIN teams t ON t.name = m.team JOIN users u ON u.email = m.email",
    // Apps and what hangs off them.
    "CREATE TABLE apps (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, \
     platform TEXT NOT NULL REFERENCES platforms (name), ip TEXT NOT NULL DEFAULT '', \
     cname TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL, \
     owner_id INTEGER REFERENCES users (id) ON DELETE SET NULL, state TEXT NOT NULL, \
     next_unit INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, \
     created_unix INTEGER NOT NULL DEFAULT 0, cleared_log_seq INTEGER NOT NULL DEFAULT 0, \
     deploys INTEGER NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX apps_cname ON apps (cname) WHERE cname <> ''",
    "CREATE INDEX apps_platform ON apps (platform)",
    "CREATE INDEX apps_owner ON apps (owner_id)",
    "INSERT INTO apps (id, name, platform, ip, cname, owner, owner_id, state, next_unit, created_at) \
     SELECT a.serial, a.name, a.platform, a.ip, a.cname, a.owner, u.id, a.state, a.next_unit, \
     a.created_at FROM v3_apps a LEFT JOIN users u ON u.email = a.owner",
    // New app ids continue after every serial ever issued, deleted apps' included.
    "DELETE FROM sqlite_sequence WHERE name = 'apps'",
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'apps', \
     MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'app_serials'), 0), \
     COALESCE((SELECT MAX(id) FROM apps), 0))",
    "DROP TABLE app_serials",
    "CREATE TABLE app_teams (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     team_id INTEGER NOT NULL REFERENCES teams (id), PRIMARY KEY (app_id, team_id))",
    "CREATE INDEX app_teams_team ON app_teams (team_id)",
    "INSERT INTO app_teams (app_id, team_id) SELECT a.id, t.id FROM v3_app_teams x \
     JOIN apps a ON a.name = x.app JOIN teams t ON t.name = x.team",
    "CREATE TABLE units (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     number INTEGER NOT NULL, name TEXT NOT NULL UNIQUE, ip TEXT NOT NULL DEFAULT '', \
     state TEXT NOT NULL, quota_item TEXT, PRIMARY KEY (app_id, number))",
    "INSERT INTO units (app_id, number, name, ip, state, quota_item) \
     SELECT a.id, u.number, u.name, u.ip, u.state, u.quota_item FROM v3_units u \
     JOIN apps a ON a.name = u.app",
    "CREATE TABLE app_logs (id INTEGER PRIMARY KEY, \
     app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, seq INTEGER NOT NULL, \
     date TEXT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL)",
    "CREATE UNIQUE INDEX app_logs_app_seq ON app_logs (app_id, seq)",
    "INSERT INTO app_logs (app_id, seq, date, source, message) \
     SELECT a.id, ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY l.id), l.date, l.source, l.message \
     FROM v3_app_logs l JOIN v3_apps o ON o.name = l.app AND l.id > o.logs_after \
     JOIN apps a ON a.id = o.serial",
    "CREATE TABLE deploys (id INTEGER PRIMARY KEY AUTOINCREMENT, \
     app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, version TEXT NOT NULL, \
     commit_id TEXT NOT NULL, timestamp TEXT NOT NULL, duration REAL NOT NULL)",
    "CREATE INDEX deploys_app ON deploys (app_id)",
    // Services, instances and bindings.
    "CREATE TABLE services (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, \
     username TEXT NOT NULL DEFAULT '', password TEXT NOT NULL DEFAULT '', \
     doc TEXT NOT NULL DEFAULT '', restricted INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL)",
    "INSERT INTO services (name, username, password, doc, restricted, created_at) \
     SELECT id, username, password, doc, restricted, created_at FROM v3_services ORDER BY id",
    "CREATE TABLE service_endpoints \
     (service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE, \
     env TEXT NOT NULL, url TEXT NOT NULL, PRIMARY KEY (service_id, env))",
    "INSERT INTO service_endpoints (service_id, env, url) SELECT s.id, e.env, e.url \
     FROM v3_service_endpoints e JOIN services s ON s.name = e.service",
    "CREATE TABLE service_owner_teams \
     (service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE, \
     team_id INTEGER NOT NULL REFERENCES teams (id), PRIMARY KEY (service_id, team_id))",
    "CREATE INDEX service_owner_teams_team ON service_owner_teams (team_id)",
    "INSERT INTO service_owner_teams (service_id, team_id) SELECT s.id, t.id \
     FROM v3_service_owner_teams o JOIN services s ON s.name = o.service \
     JOIN teams t ON t.name = o.team",
    "CREATE TABLE service_teams \
     (service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE, \
     team_id INTEGER NOT NULL REFERENCES teams (id), PRIMARY KEY (service_id, team_id))",
    "CREATE INDEX service_teams_team ON service_teams (team_id)",
    "INSERT INTO service_teams (service_id, team_id) SELECT s.id, t.id \
     FROM v3_service_teams g JOIN services s ON s.name = g.service JOIN teams t ON t.name = g.team",
    "CREATE TABLE service_instances (id INTEGER PRIMARY KEY AUTOINCREMENT, \
     name TEXT NOT NULL UNIQUE, service_id INTEGER NOT NULL REFERENCES services (id), \
     state TEXT NOT NULL, created_at TEXT NOT NULL, created_unix INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX service_instances_service ON service_instances (service_id)",
    "INSERT INTO service_instances (name, service_id, state, created_at) \
     SELECT i.name, s.id, 'ready', i.created_at FROM v3_service_instances i \
     JOIN services s ON s.name = i.service",
    "CREATE TABLE instance_teams \
     (instance_id INTEGER NOT NULL REFERENCES service_instances (id) ON DELETE CASCADE, \
     team_id INTEGER NOT NULL REFERENCES teams (id), PRIMARY KEY (instance_id, team_id))",
    "CREATE INDEX instance_teams_team ON instance_teams (team_id)",
    "INSERT INTO instance_teams (instance_id, team_id) SELECT i.id, t.id \
     FROM v3_instance_teams x JOIN service_instances i ON i.name = x.instance \
     JOIN teams t ON t.name = x.team",
    "CREATE TABLE instance_apps \
     (instance_id INTEGER NOT NULL REFERENCES service_instances (id), \
     app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     PRIMARY KEY (instance_id, app_id))",
    "CREATE INDEX instance_apps_app ON instance_apps (app_id)",
    "INSERT INTO instance_apps (instance_id, app_id) SELECT i.id, a.id FROM v3_instance_apps b \
     JOIN service_instances i ON i.name = b.instance JOIN apps a ON a.name = b.app",
    "CREATE TABLE env_vars (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     name TEXT NOT NULL, value TEXT NOT NULL, public INTEGER NOT NULL, \
     instance_id INTEGER REFERENCES service_instances (id) ON DELETE CASCADE, \
     PRIMARY KEY (app_id, name))",
    "CREATE INDEX env_vars_instance ON env_vars (instance_id)",
    "INSERT INTO env_vars (app_id, name, value, public, instance_id) \
     SELECT a.id, v.name, v.value, v.public, i.id FROM v3_env_vars v \
     JOIN apps a ON a.name = v.app LEFT JOIN service_instances i ON i.name = v.instance \
     WHERE v.instance IS NULL OR i.id IS NOT NULL",
    // Quotas: a user's items are the apps it owns, so only app quotas keep items (the
    // unit numbers reserved against them).
    "CREATE TABLE quotas (id INTEGER PRIMARY KEY AUTOINCREMENT, \
     user_id INTEGER UNIQUE REFERENCES users (id) ON DELETE CASCADE, \
     app_id INTEGER UNIQUE REFERENCES apps (id) ON DELETE CASCADE, \"limit\" INTEGER NOT NULL, \
     CHECK ((user_id IS NULL) <> (app_id IS NULL)))",
    "INSERT INTO quotas (user_id, \"limit\") SELECT u.id, q.\"limit\" FROM v3_quotas q \
     JOIN users u ON u.email = q.owner",
    "INSERT INTO quotas (app_id, \"limit\") SELECT a.id, q.\"limit\" FROM v3_quotas q \
     JOIN apps a ON a.name = q.owner",
    "CREATE TABLE quota_items (quota_id INTEGER NOT NULL REFERENCES quotas (id) ON DELETE CASCADE, \
     item TEXT NOT NULL, PRIMARY KEY (quota_id, item))",
    "INSERT INTO quota_items (quota_id, item) SELECT q.id, i.item FROM v3_quota_items i \
     JOIN apps a ON a.name = i.owner JOIN quotas q ON q.app_id = a.id",
    "DROP TABLE v3_quota_items",
    "DROP TABLE v3_quotas",
    "DROP TABLE v3_env_vars",
    "DROP TABLE v3_instance_apps",
    "DROP TABLE v3_instance_teams",
    "DROP TABLE v3_service_instances",
    "DROP TABLE v3_service_teams",
    "DROP TABLE v3_service_owner_teams",
    "DROP TABLE v3_service_endpoints",
    "DROP TABLE v3_services",
    "DROP TABLE v3_app_logs",
    "DROP TABLE v3_units",
    "DROP TABLE v3_app_teams",
    "DROP TABLE v3_apps",
    "DROP TABLE v3_team_members",
    "DROP TABLE v3_teams",
    "DROP TABLE v3_user_keys",
    "DROP TABLE v3_users",
], &[
    // 5: who registered each service, so that one user's registrations can be counted
    // (at most `MAX_SERVICES_PER_USER`). Services registered before have none and count
    // for nobody; a removed user's services stay with their teams.
    "ALTER TABLE services ADD COLUMN creator_id INTEGER REFERENCES users (id) ON DELETE SET NULL",
    "CREATE INDEX services_creator ON services (creator_id)",
], &[
    // 6: the index of each user's tokens (their hashes and expiry), written in the
    // login's transaction; it was a key-value list that concurrent logins rewrote and
    // could lose entries of. Old lists are moved at the user's next login; only the
    // accounts of before may have one (`kv_token_list`), so no other login looks.
    "CREATE TABLE user_tokens (hash TEXT PRIMARY KEY, \
     user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, expires INTEGER NOT NULL)",
    "CREATE INDEX user_tokens_user ON user_tokens (user_id, expires)",
    "ALTER TABLE users ADD COLUMN kv_token_list INTEGER NOT NULL DEFAULT 0",
    "UPDATE users SET kv_token_list = 1",
], &[
    // 7: fewer pages per write. Each table keyed by a pair was a rowid table plus an index
    // of its key, two b-trees for every row written; keyed by the pair itself (`WITHOUT
    // ROWID`) it is one. An app's own variables (no instance) are left out of the
    // instance index. App creation wrote 20 pages to the log, now 15; a variable, 7
    // now 5. None of these tables is referenced by another, so each is rebuilt and
    // renamed in place.
    "CREATE TABLE v7_app_teams (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     team_id INTEGER NOT NULL REFERENCES teams (id), PRIMARY KEY (app_id, team_id)) WITHOUT ROWID",
    "INSERT INTO v7_app_teams (app_id, team_id) SELECT app_id, team_id FROM app_teams",
    "DROP TABLE app_teams",
    "ALTER TABLE v7_app_teams RENAME TO app_teams",
    "CREATE INDEX app_teams_team ON app_teams (team_id)",
    "CREATE TABLE v7_team_members (team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE, \
     user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
     PRIMARY KEY (team_id, user_id)) WITHOUT ROWID",
    "INSERT INTO v7_team_members (team_id, user_id) SELECT team_id, user_id FROM team_members",
    "DROP TABLE team_members",
    "ALTER TABLE v7_team_members RENAME TO team_members",
    "CREATE INDEX team_members_user ON team_members (user_id)",
    "CREATE TABLE v7_units (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     number INTEGER NOT NULL, name TEXT NOT NULL UNIQUE, ip TEXT NOT NULL DEFAULT '', \
     state TEXT NOT NULL, quota_item TEXT, PRIMARY KEY (app_id, number)) WITHOUT ROWID",
    "INSERT INTO v7_units (app_id, number, name, ip, state, quota_item) \
     SELECT app_id, number, name, ip, state, quota_item FROM units",
    "DROP TABLE units",
    "ALTER TABLE v7_units RENAME TO units",
    "CREATE TABLE v7_env_vars (app_id INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE, \
     name TEXT NOT NULL, value TEXT NOT NULL, public INTEGER NOT NULL, \
     instance_id INTEGER REFERENCES service_instances (id) ON DELETE CASCADE, \
     PRIMARY KEY (app_id, name)) WITHOUT ROWID",
    "INSERT INTO v7_env_vars (app_id, name, value, public, instance_id) \
     SELECT app_id, name, value, public, instance_id FROM env_vars",
    "DROP TABLE env_vars",
    "ALTER TABLE v7_env_vars RENAME TO env_vars",
    "CREATE INDEX env_vars_instance ON env_vars (instance_id) WHERE instance_id IS NOT NULL",
    "CREATE TABLE v7_quota_items (quota_id INTEGER NOT NULL REFERENCES quotas (id) ON DELETE CASCADE, \
     item TEXT NOT NULL, PRIMARY KEY (quota_id, item)) WITHOUT ROWID",
    "INSERT INTO v7_quota_items (quota_id, item) SELECT quota_id, item FROM quota_items",
    "DROP TABLE quota_items",
    "ALTER TABLE v7_quota_items RENAME TO quota_items",
]];

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date. `seed_platforms` are inserted when migration 1 runs
/// (API.md 1.7: platforms are seeded once, when the schema is created); they are read
/// only then.
pub fn migrate(db: &Db, seed_platforms: &dyn Fn() -> Vec<String>, now: &str) -> DbResult<()> {
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
                for platform in seed_platforms() {
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

/// For unit tests of the layers above: an in-memory database at the latest schema, with
/// one app (platform `python`, state `ready`) per `(id, name)`.
#[cfg(test)]
pub fn test_db_with_apps(apps: &[(i64, &str)]) -> Db {
    test_db_from(crate::runtime::db::native::NativeDb::memory(), apps)
}

/// [`test_db_with_apps`] on a database that refuses temporary objects, as libSQL does.
#[cfg(test)]
pub fn test_db_like_libsql(apps: &[(i64, &str)]) -> Db {
    test_db_from(
        crate::runtime::db::native::NativeDb::memory_like_libsql(),
        apps,
    )
}

#[cfg(test)]
fn test_db_from(db: Db, apps: &[(i64, &str)]) -> Db {
    migrate(&db, &|| vec!["python".into()], "now").expect("migrate");
    for (id, name) in apps {
        db.execute(
            "INSERT INTO apps (id, name, platform, owner, state, created_at) \
             VALUES (?, ?, 'python', 'o@x.com', 'ready', 'now')",
            params![*id, *name],
        )
        .expect("insert app");
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;

    #[test]
    fn migration_runs_once_and_seeds_platforms() {
        let db = NativeDb::memory();
        let seed = vec!["python".to_string(), "go".to_string()];
        migrate(&db, &|| seed.clone(), "2014-03-01T12:00:00Z").unwrap();
        migrate(&db, &|| vec!["ruby".to_string()], "2014-03-01T12:00:00Z").unwrap();
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

    /// The schema relies on SQLite enforcing foreign keys on a connection nobody set up,
    /// as Spin's connections are: a removed parent takes its children, and no child
    /// attaches to a missing parent.
    #[test]
    fn a_default_connection_enforces_the_foreign_keys() {
        let db = test_db_with_apps(&[(7, "web")]);
        for sql in [
            "INSERT INTO users (email, password_hash, created_at) VALUES ('a@x.com', 'h', 'now')",
            "INSERT INTO teams (name, created_at) VALUES ('ops', 'now')",
            "INSERT INTO team_members (team_id, user_id) SELECT t.id, u.id FROM teams t, users u",
            "INSERT INTO env_vars (app_id, name, value, public) VALUES (7, 'PORT', '80', 1)",
            "DELETE FROM users",
            "DELETE FROM apps",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        for table in ["team_members", "env_vars"] {
            let left = db.query(&format!("SELECT 1 FROM {table}"), &[]).unwrap();
            assert!(left.is_empty(), "{table} outlived its parent");
        }
        let orphan = db.execute(
            "INSERT INTO env_vars (app_id, name, value, public) VALUES (7, 'PORT', '80', 1)",
            &[],
        );
        assert!(orphan.is_err_and(|e| e.is_foreign_key_violation()));
    }

    /// Migration 7 rebuilds the tables keyed by a pair without a rowid: their rows stay,
    /// and so do the cascades that remove them with their parents.
    #[test]
    fn a_version_6_database_keeps_its_pair_keyed_rows() {
        let db = NativeDb::memory();
        migrate_to(&db, 6);
        for sql in [
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (1, 'a@x.com', 'h', 'now')",
            "INSERT INTO teams (id, name, created_at) VALUES (1, 'ops', 'now')",
            "INSERT INTO team_members (team_id, user_id) VALUES (1, 1)",
            "INSERT INTO apps (id, name, platform, owner, state, created_at) VALUES (7, 'web', 'python', 'a@x.com', 'ready', 'now')",
            "INSERT INTO app_teams (app_id, team_id) VALUES (7, 1)",
            "INSERT INTO units (app_id, number, name, state) VALUES (7, 0, 'web/0', 'started')",
            "INSERT INTO env_vars (app_id, name, value, public) VALUES (7, 'PORT', '80', 1)",
            "INSERT INTO quotas (id, app_id, \"limit\") VALUES (3, 7, 8)",
            "INSERT INTO quota_items (quota_id, item) VALUES (3, 'web-0')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        migrate(&db, &|| vec!["python".into()], "now").unwrap();
        let tables = [
            "app_teams",
            "team_members",
            "units",
            "env_vars",
            "quota_items",
        ];
        for table in tables {
            let sql = column(
                &db,
                &format!("SELECT sql FROM sqlite_master WHERE name = '{table}'"),
            );
            assert!(sql[0].ends_with("WITHOUT ROWID"), "{table}: {sql:?}");
            assert_eq!(
                column(&db, &format!("SELECT COUNT(*) FROM {table}")),
                ["1"],
                "{table}"
            );
        }
        assert!(column(&db, "PRAGMA foreign_key_check").is_empty());
        db.execute("DELETE FROM apps", &[]).unwrap();
        db.execute("DELETE FROM users", &[]).unwrap();
        for table in tables {
            assert_eq!(
                column(&db, &format!("SELECT COUNT(*) FROM {table}")),
                ["0"],
                "{table}"
            );
        }
    }

    /// Migrates only up to `version` (a database written by an earlier release).
    fn migrate_to(db: &Db, version: usize) {
        db.execute("BEGIN", &[]).unwrap();
        for statements in &MIGRATIONS[..version] {
            for statement in statements.iter() {
                db.execute(statement, &[]).unwrap();
            }
        }
        db.execute("INSERT INTO platforms (name) VALUES ('python')", &[])
            .unwrap();
        db.execute(&format!("PRAGMA user_version = {version}"), &[])
            .unwrap();
        db.execute("COMMIT", &[]).unwrap();
    }

    fn column(db: &Db, sql: &str) -> Vec<String> {
        crate::runtime::db::native::texts(db, sql, &[])
    }

    #[test]
    fn a_version_3_database_keeps_its_data_and_drops_its_orphans() {
        let db = NativeDb::memory();
        migrate_to(&db, 3);
        for sql in [
            "INSERT INTO users (email, password_hash, token_epoch, next_key, created_at) VALUES \
             ('a@x.com', 'ha', 2, 3, '2024-01-01T00:00:00Z'), ('b@x.com', 'hb', 0, 1, '2024-01-02T00:00:00Z')",
            "INSERT INTO user_keys (email, name, content) VALUES ('a@x.com', 'a@x.com-1', 'ssh-rsa A')",
            "INSERT INTO teams (name, created_at) VALUES ('backend', 'now'), ('ops', 'now')",
            "INSERT INTO team_members (team, email) VALUES ('backend', 'a@x.com'), ('ops', 'b@x.com'), ('gone', 'a@x.com')",
            "INSERT INTO app_serials DEFAULT VALUES",
            "INSERT INTO app_serials DEFAULT VALUES",
            "INSERT INTO app_serials DEFAULT VALUES",
            "INSERT INTO apps (name, serial, platform, ip, cname, owner, state, next_unit, created_at, logs_after) \
             VALUES ('web', 2, 'python', '10.0.0.1', 'www.x.com', 'a@x.com', 'ready', 2, 'now', 1)",
            "INSERT INTO app_teams (app, team) VALUES ('web', 'backend'), ('web', 'nosuchteam'), ('deleted', 'backend')",
            "INSERT INTO units (app, number, name, ip, state, quota_item) VALUES ('web', 0, 'web/0', '10.0.0.2', 'started', 'web-0'), ('web', 1, 'web/1', '', 'started', 'web-1')",
            "INSERT INTO env_vars (app, name, value, public, instance) VALUES ('web', 'PORT', '80', 1, NULL), \
             ('web', 'DB', 'h', 0, 'mydb'), ('web', 'OLD', 'x', 0, 'gone'), ('deleted', 'X', 'y', 1, NULL)",
            "INSERT INTO services (id, username, password, doc, restricted, created_at) VALUES ('mysql', 'u', 'p', 'doc', 0, 'now')",
            "INSERT INTO service_endpoints (service, env, url) VALUES ('mysql', 'production', 'http://m')",
            "INSERT INTO service_owner_teams (service, team) VALUES ('mysql', 'backend')",
            "INSERT INTO service_teams (service, team) VALUES ('mysql', 'ops')",
            "INSERT INTO service_instances (name, service, created_at) VALUES ('mydb', 'mysql', 'now')",
            "INSERT INTO instance_teams (instance, team) VALUES ('mydb', 'backend')",
            "INSERT INTO instance_apps (instance, app) VALUES ('mydb', 'web')",
            "INSERT INTO quotas (owner, \"limit\") VALUES ('a@x.com', 5), ('web', 10)",
            "INSERT INTO quota_items (owner, item) VALUES ('a@x.com', 'web'), ('web', 'web-0'), ('web', 'web-1')",
            "INSERT INTO app_logs (app, date, source, message) VALUES ('web', 'd', 'app', 'before the app'), \
             ('web', 'd', 'app', 'one'), ('web', 'd', 'tsuru', 'two'), ('other', 'd', 'app', 'x')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        migrate(&db, &|| vec!["python".into()], "now").unwrap();
        assert!(is_current(&db).unwrap());
        // Apps keep their serial as id, so their app tokens stay valid; new ids come
        // after every serial ever issued.
        assert_eq!(
            column(&db, "SELECT id || ' ' || name || ' ' || owner_id FROM apps"),
            ["2 web 1"]
        );
        db.execute(
            "INSERT INTO apps (name, platform, owner, state, created_at) VALUES ('new', 'python', 'b@x.com', 'ready', 'now')",
            &[],
        )
        .unwrap();
        assert_eq!(column(&db, "SELECT id FROM apps WHERE name = 'new'"), ["4"]);
        assert_eq!(
            column(
                &db,
                "SELECT email || ' ' || token_epoch || ' ' || legacy_tokens FROM users ORDER BY id"
            ),
            ["a@x.com 2 1", "b@x.com 0 1"]
        );
        assert_eq!(
            column(&db, "SELECT name FROM user_keys WHERE user_id = 1"),
            ["a@x.com-1"]
        );
        assert_eq!(
            column(&db, "SELECT t.name || ' ' || u.email FROM team_members m JOIN teams t ON t.id = m.team_id JOIN users u ON u.id = m.user_id ORDER BY 1"),
            ["backend a@x.com", "ops b@x.com"]
        );
        assert_eq!(
            column(
                &db,
                "SELECT t.name FROM app_teams x JOIN teams t ON t.id = x.team_id"
            ),
            ["backend"]
        );
        assert_eq!(
            column(
                &db,
                "SELECT name FROM units WHERE app_id = 2 ORDER BY number"
            ),
            ["web/0", "web/1"]
        );
        assert_eq!(
            column(
                &db,
                "SELECT name || ' ' || COALESCE(instance_id, '-') FROM env_vars ORDER BY name"
            ),
            ["DB 1", "PORT -"]
        );
        assert_eq!(
            column(&db, "SELECT url FROM service_endpoints"),
            ["http://m"]
        );
        assert_eq!(
            column(
                &db,
                "SELECT t.name FROM service_teams g JOIN teams t ON t.id = g.team_id"
            ),
            ["ops"]
        );
        assert_eq!(
            column(&db, "SELECT name || ' ' || state FROM service_instances"),
            ["mydb ready"]
        );
        assert_eq!(column(&db, "SELECT app_id FROM instance_apps"), ["2"]);
        assert_eq!(
            column(&db, "SELECT COALESCE(user_id, '-') || ' ' || COALESCE(app_id, '-') || ' ' || \"limit\" FROM quotas ORDER BY id"),
            ["1 - 5", "- 2 10"]
        );
        assert_eq!(
            column(&db, "SELECT item FROM quota_items ORDER BY item"),
            ["web-0", "web-1"]
        );
        // The log entries the app could read, renumbered from 1.
        assert_eq!(
            column(
                &db,
                "SELECT seq || ' ' || message FROM app_logs ORDER BY seq"
            ),
            ["1 one", "2 two"]
        );
        // What belongs to the app now goes with it.
        db.execute("DELETE FROM instance_apps", &[]).unwrap();
        db.execute("DELETE FROM apps WHERE id = 2", &[]).unwrap();
        for table in ["units", "env_vars", "app_teams", "app_logs", "quota_items"] {
            assert!(
                column(&db, &format!("SELECT 1 FROM {table}")).is_empty(),
                "{table}"
            );
        }
    }

    #[test]
    fn a_version_4_database_keeps_its_services_credited_to_nobody() {
        let db = NativeDb::memory();
        migrate_to(&db, 4);
        for sql in [
            "INSERT INTO users (email, password_hash, created_at) VALUES ('a@x.com', 'h', 'now')",
            "INSERT INTO services (name, created_at) VALUES ('mysql', 'now')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        migrate(&db, &|| vec!["python".into()], "now").unwrap();
        assert!(is_current(&db).unwrap());
        assert_eq!(
            column(
                &db,
                "SELECT name || ' ' || COALESCE(creator_id, '-') FROM services"
            ),
            ["mysql -"]
        );
        // A removed user's services stay, credited to nobody.
        db.execute(
            "INSERT INTO services (name, created_at, creator_id) VALUES ('redis', 'now', 1)",
            &[],
        )
        .unwrap();
        db.execute("DELETE FROM users", &[]).unwrap();
        assert_eq!(
            column(
                &db,
                "SELECT name || ' ' || COALESCE(creator_id, '-') FROM services ORDER BY name"
            ),
            ["mysql -", "redis -"]
        );
    }
}
