//! The store's tables, created and upgraded by the store itself: each migration runs once, in order, in one
//! transaction that holds an advisory lock, so that replicas starting together apply it exactly once.

use refresh_manager::StoreError;

use crate::error::DatabaseError;

/// Every migration, in order. A released one is never edited: a change is a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_credentials.sql")),
    (2, include_str!("../migrations/0002_seal_format.sql")),
];

/// The advisory lock key of migrations (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x7265_6672_6573_6801;

/// Applies the migrations not yet applied. `Some((found, known))` when the tables are at a migration newer than
/// any this release has: nothing is applied then, and the store must not write (it cannot know what the newer
/// release's rows mean).
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
) -> Result<Option<(i32, i32)>, StoreError> {
    let database = |error| StoreError::Database(Box::new(DatabaseError::new(error)));
    let tx = client.transaction().await.map_err(database)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(database)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS refresh_kit_migrations (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(database)?;
    let applied: Option<i32> = tx
        .query_one("SELECT max(version) FROM refresh_kit_migrations", &[])
        .await
        .map_err(database)?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if let Some(found) = applied.filter(|found| *found > known) {
        tracing::warn!(
            found,
            known,
            "the token tables were migrated by a newer release: this store reads them and writes nothing"
        );
        return Ok(Some((found, known)));
    }
    for (version, sql) in MIGRATIONS {
        if applied.is_some_and(|applied| applied >= *version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(database)?;
        tx.execute(
            "INSERT INTO refresh_kit_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(database)?;
        tracing::info!(version, "applied a token store migration");
    }
    tx.commit().await.map_err(database)?;
    Ok(None)
}
