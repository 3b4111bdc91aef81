//! The store's tables, created and upgraded by the store itself: each migration runs once, in order, in one
//! transaction that holds an advisory lock, so that replicas starting together apply it exactly once.

use refresh_manager::StoreError;

/// Every migration, in order. A released one is never edited: a change is a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_credentials.sql")),
    (2, include_str!("../migrations/0002_seal_format.sql")),
];

/// The advisory lock key of migrations (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x7265_6672_6573_6801;

pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let database = |error| StoreError::Database(Box::new(error));
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
    tx.commit().await.map_err(database)
}
