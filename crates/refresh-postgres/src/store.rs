//! [`PgStore`]: one row per credential, written only under a fenced lease; waiters woken by `LISTEN/NOTIFY`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod, Runtime};
use refresh_manager::{
    CredentialId, LockKind, Orphan, StoreError, StoredTokens, Swap, TokenStore, Versioned,
};
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;

use crate::cipher::Keyring;
use crate::connection::Target;
use crate::error::{ConnectionError, DatabaseError};
use crate::listen::{self, CHANNEL, Notice};
use crate::schema;

/// How a [`PgStore`] leases and connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgStoreOptions {
    /// How long a lease lasts on the database server's clock. Keep it longer than the manager's call timeout
    /// (`refresh_facade::Refresher::call_timeout`) plus a margin: a holder sends no vendor request
    /// its lease could not outlast.
    pub lease: Duration,
    /// The most connections the pool opens (besides the one that listens). Each refresh in flight holds one
    /// for its few statements; reads of cached tokens hold none.
    pub pool_size: usize,
    /// How long a statement waits for a connection, and a connection attempt for the server.
    pub connect_timeout: Duration,
    /// The server's `statement_timeout` on the store's connections: a statement stuck on the server fails
    /// instead of outliving a lease.
    pub statement_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        PgStoreOptions {
            lease: Duration::from_secs(60),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl PgStoreOptions {
    /// How long a lease lasts (60 s by default).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The most pooled connections (8 by default, at least 1).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long to wait for a connection (5 s by default).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The server's `statement_timeout` on the store's connections (10 s by default).
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }
}

/// Credentials in PostgreSQL, shared by any number of replicas. Cloning it is cheap (one pool).
///
/// A refresh runs under a lease on the credential's row ([`TokenStore::lock`]): one conditional `UPDATE` takes
/// it when it is free or lapsed and bumps its epoch, the fencing number; a write under the lease succeeds only
/// while the row's epoch is still that one. Replicas that find the lease held wait for a notification (new tokens
/// committed, or the lease given up), or at most until the lease lapses. Tokens are sealed with AES-256-GCM under
/// the [`Keyring`]'s current key, whose id is stored with them.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    keys: Keyring,
    options: PgStoreOptions,
    /// Who holds a lease, as written in the row: this process and this store.
    owner: String,
    notices: broadcast::Sender<Notice>,
    /// The schema and table of this store's rows, which its notices name.
    scope: String,
    /// Keeps the listener running while the store lives.
    _listening: broadcast::Receiver<Notice>,
    /// Set when the tables were migrated by a newer release: the store reads, and refuses to write.
    newer_schema: Option<(i32, i32)>,
}

/// A lease on one credential's row (or, woken by new tokens, the right to read and adopt them only). Dropping it
/// gives the lease up; a holder that dies simply lets it lapse.
pub struct PgLease {
    store: PgStore,
    id: CredentialId,
    /// `None`: no lease, only new tokens to read.
    epoch: Option<i64>,
    /// When the lease lapses at the latest, by this process's clock: counted from before the `UPDATE` was sent,
    /// so never later than the server's `lease_until`.
    lapses: Instant,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("owner", &self.inner.owner)
            .field("keys", &self.inner.keys)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Which row a sealed value belongs to: part of what its tag authenticates.
#[derive(Clone, Copy)]
enum Sealed {
    /// A credential's record at this version.
    Credential { version: u64 },
    /// An orphan that lost to this version.
    Orphan { lost_to_version: u64 },
}

/// Selected with a credential's row (aliased `c`): whether it has orphans, which are then read.
const HAS_ORPHANS: &str =
    "EXISTS (SELECT 1 FROM refresh_kit_orphans o WHERE o.credential_id = c.id) AS has_orphans";

/// The seal format new writes use (`seal_format`): 2 binds the version (see `migrations/0002_seal_format.sql`).
const SEAL_FORMAT: i16 = 2;

enum Take {
    Taken(i64),
    /// Someone holds it for this much longer.
    Held(Duration),
}

fn database(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(DatabaseError::new(error)))
}

/// A pool's error; one from the database is told as the database's own.
fn pool(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => database(error),
        other => database(other),
    }
}

fn connection(error: ConnectionError) -> StoreError {
    StoreError::Database(Box::new(error))
}

/// Who holds a credential's lease, as its row says (see [`PgStore::lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The holder's name: its process id and a store number (see [`PgStore::owner`]).
    pub owner: String,
    /// How much longer the lease lasts, on the database server's clock.
    pub left: Duration,
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or `key=value` string), applies the store's
    /// migrations, and starts listening.
    ///
    /// TLS is set in `url` as libpq sets it: `sslmode` (`disable`, `prefer` (the default), `require`,
    /// `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file, or `system`). Use
    /// `sslmode=verify-full`: the weaker modes do not stop a machine in the middle. Both the pooled connections
    /// and the one that listens use it.
    pub async fn connect(url: &str, keys: Keyring) -> Result<Self, StoreError> {
        Self::connect_with(url, keys, PgStoreOptions::default()).await
    }

    pub async fn connect_with(
        url: &str,
        keys: Keyring,
        options: PgStoreOptions,
    ) -> Result<Self, StoreError> {
        let Target {
            mut config,
            tls,
            mode,
        } = Target::parse(url, options.statement_timeout).map_err(connection)?;
        tracing::debug!(sslmode = ?mode, "connecting to the token database");
        config.connect_timeout(options.connect_timeout);
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(database)?;
        let mut client = pool.get().await.map_err(self::pool)?;
        let newer_schema = schema::migrate(&mut client).await?;
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await
            .map_err(database)?
            .get(0);
        drop(client);
        let scope = format!("{schema}.refresh_kit_credentials");
        let (notices, listening) = broadcast::channel(1024);
        listen::spawn(config, tls, scope.clone(), notices.clone());
        let owner = format!("pid {} store {:08x}", std::process::id(), fastrand::u32(..));
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                keys,
                options,
                owner,
                notices,
                scope,
                _listening: listening,
                newer_schema,
            }),
        })
    }

    /// Who holds the lease on `id` and for how much longer (`None`: no one, or it lapsed).
    pub async fn lease(&self, id: &CredentialId) -> Result<Option<LeaseHolder>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT lease_owner, EXTRACT(EPOCH FROM lease_until - now())::float8
                   FROM refresh_kit_credentials WHERE id = $1 AND lease_until > now()",
                &[&id.as_str()],
            )
            .await
            .map_err(database)?;
        Ok(row.map(|row| LeaseHolder {
            owner: row.get::<_, Option<String>>(0).unwrap_or_default(),
            left: Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0)),
        }))
    }

    /// Refuses a write to tables a newer release migrated.
    fn writable(&self) -> Result<(), StoreError> {
        match self.inner.newer_schema {
            Some((found, known)) => Err(connection(ConnectionError::SchemaNewer { found, known })),
            None => Ok(()),
        }
    }

    /// The name this store writes as the lease owner.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool)
    }

    async fn try_take(&self, id: &CredentialId) -> Result<Take, StoreError> {
        let client = self.client().await?;
        let seconds = self.inner.options.lease.as_secs_f64();
        loop {
            let row = client
                .query_one(
                    "WITH taken AS (
                        UPDATE refresh_kit_credentials
                           SET lease_owner = $2, lease_epoch = lease_epoch + 1,
                               lease_until = now() + make_interval(secs => $3)
                         WHERE id = $1 AND (lease_until IS NULL OR lease_until <= now())
                     RETURNING lease_epoch)
                     SELECT (SELECT lease_epoch FROM taken),
                            (SELECT EXTRACT(EPOCH FROM lease_until - now())::float8
                               FROM refresh_kit_credentials WHERE id = $1),
                            EXISTS (SELECT 1 FROM refresh_kit_credentials WHERE id = $1)",
                    &[&id.as_str(), &self.inner.owner, &seconds],
                )
                .await
                .map_err(database)?;
            if let Some(epoch) = row.get::<_, Option<i64>>(0) {
                return Ok(Take::Taken(epoch));
            }
            if row.get::<_, bool>(2) {
                let left = row.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0);
                return Ok(Take::Held(Duration::from_secs_f64(left)));
            }
            // A credential never written: its row, empty, is what the lease is on.
            client
                .execute(
                    "INSERT INTO refresh_kit_credentials (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                    &[&id.as_str()],
                )
                .await
                .map_err(database)?;
        }
    }

    /// Gives the lease `epoch` of `id` up in the database and wakes its waiters; a failure only lets it lapse.
    async fn give_up(&self, id: &CredentialId, epoch: i64) {
        let released = async {
            self.client()
                .await?
                .execute(
                    "WITH released AS (
                        UPDATE refresh_kit_credentials SET lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_epoch = $2 RETURNING id)
                     SELECT pg_notify($3, $4) FROM released",
                    &[
                        &id.as_str(),
                        &epoch,
                        &CHANNEL,
                        &Notice::released_payload(id.as_str(), &self.inner.scope),
                    ],
                )
                .await
                .map_err(database)
        };
        if let Err(error) = released.await {
            tracing::warn!(credential = %id, %error, "a lease could not be given up; it lapses instead");
        }
    }

    /// What a row's tag binds besides the key: its kind and credential, and from format 2 on its version.
    fn context(row: Sealed, format: i16, id: &CredentialId) -> Vec<u8> {
        let (kind, version) = match row {
            Sealed::Credential { version } => ("credential", version),
            Sealed::Orphan { lost_to_version } => ("orphan", lost_to_version),
        };
        if format < 2 {
            return format!("{kind}\0{id}").into_bytes();
        }
        format!("{kind}\0{id}\0{version}").into_bytes()
    }

    /// `tokens` sealed for `row` in [`SEAL_FORMAT`]: the key id and the sealed bytes.
    fn seal(
        &self,
        row: Sealed,
        id: &CredentialId,
        tokens: &StoredTokens,
    ) -> Result<(String, Vec<u8>), StoreError> {
        // serde's message could quote a token: say only what failed.
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(tokens).map_err(|_| {
                StoreError::Io(std::io::Error::other("the tokens did not serialize"))
            })?);
        Ok(self
            .inner
            .keys
            .seal(&Self::context(row, SEAL_FORMAT, id), &plain))
    }

    fn open(
        &self,
        row: Sealed,
        format: i16,
        id: &CredentialId,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<StoredTokens, StoreError> {
        let plain = self
            .inner
            .keys
            .open(key_id, &Self::context(row, format, id), sealed)
            .map_err(|error| StoreError::Key {
                id: id.clone(),
                key_id: key_id.to_owned(),
                reason: error.reason(),
            })?;
        // serde's message can quote a value, which may be a token: keep none of it.
        serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt {
            id: id.clone(),
            reason: "the decrypted record is not a token record".into(),
        })
    }

    /// The tokens in a credential row (`None` for a row without tokens yet).
    fn tokens_of(
        &self,
        id: &CredentialId,
        row: &tokio_postgres::Row,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let key_id: Option<String> = row.get("key_id");
        let sealed: Option<Vec<u8>> = row.get("tokens");
        let version = row.get::<_, i64>("version") as u64;
        let format: i16 = row.get("seal_format");
        match (key_id, sealed) {
            (Some(key_id), Some(sealed)) => self
                .open(Sealed::Credential { version }, format, id, &key_id, &sealed)
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The orphans of `id` that open. One that does not (sealed under a key the store no longer has, or altered)
    /// is reported and skipped: it must never block the record, whose own tokens may be fine. It goes when the
    /// retention rule prunes it.
    async fn orphans(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        id: &CredentialId,
    ) -> Result<Vec<Orphan>, StoreError> {
        let rows = client
            .query(
                "SELECT seq, key_id, tokens, lost_to_version, kept_at, seal_format FROM refresh_kit_orphans
                  WHERE credential_id = $1 ORDER BY seq",
                &[&id.as_str()],
            )
            .await
            .map_err(database)?;
        let orphans = rows.iter().filter_map(|row| {
            let lost_to_version = row.get::<_, i64>("lost_to_version") as u64;
            let sealed = Sealed::Orphan { lost_to_version };
            let format: i16 = row.get("seal_format");
            match self.open(sealed, format, id, row.get("key_id"), row.get("tokens")) {
                Ok(tokens) => Some(Orphan::new(tokens, row.get("kept_at"), lost_to_version)),
                Err(error) => {
                    let seq: i64 = row.get("seq");
                    tracing::warn!(credential = %id, orphan = seq, %error, "an orphan that does not open is skipped");
                    None
                }
            }
        });
        Ok(orphans.collect())
    }

    /// After a write of version `version` of `id` inside `tx`: orphans sealed under an older key are sealed again
    /// under the current one (so that the older key can be retired), and orphans are pruned by
    /// [`refresh_manager::orphan_retained`] and [`refresh_manager::MOST_ORPHANS`].
    async fn tend_orphans(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: &CredentialId,
        version: u64,
    ) -> Result<(), StoreError> {
        let current = self.inner.keys.current_id();
        let older = tx
            .query(
                "SELECT seq, key_id, tokens, lost_to_version, seal_format FROM refresh_kit_orphans
                  WHERE credential_id = $1 AND (key_id <> $2 OR seal_format <> $3)",
                &[&id.as_str(), &current, &SEAL_FORMAT],
            )
            .await
            .map_err(database)?;
        for row in &older {
            let lost_to_version = row.get::<_, i64>("lost_to_version") as u64;
            let sealed = Sealed::Orphan { lost_to_version };
            let format: i16 = row.get("seal_format");
            // One that does not open stays as it is, to be pruned.
            let Ok(tokens) = self.open(sealed, format, id, row.get("key_id"), row.get("tokens"))
            else {
                continue;
            };
            let (key_id, sealed) = self.seal(sealed, id, &tokens)?;
            let seq: i64 = row.get("seq");
            tx.execute(
                "UPDATE refresh_kit_orphans SET key_id = $2, tokens = $3, seal_format = $4 WHERE seq = $1",
                &[&seq, &key_id, &sealed, &SEAL_FORMAT],
            )
            .await
            .map_err(database)?;
        }
        let retention = refresh_manager::ORPHAN_RETENTION.as_secs_f64();
        let most = refresh_manager::MOST_ORPHANS as i64;
        tx.execute(
            "DELETE FROM refresh_kit_orphans
              WHERE credential_id = $1
                AND ((lost_to_version + 1 < $2 AND kept_at <= now() - make_interval(secs => $3))
                     OR seq NOT IN (SELECT seq FROM refresh_kit_orphans WHERE credential_id = $1
                                     ORDER BY seq DESC LIMIT $4))",
            &[&id.as_str(), &(version as i64), &retention, &most],
        )
        .await
        .map_err(database)?;
        Ok(())
    }

    /// The record as one statement's snapshot sees it, with its orphans (`row` selected with [`HAS_ORPHANS`]).
    async fn record(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        id: &CredentialId,
        row: Option<&tokio_postgres::Row>,
    ) -> Result<Option<Versioned>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let Some(tokens) = self.tokens_of(id, row)? else {
            return Ok(None);
        };
        let version = row.get::<_, i64>("version") as u64;
        // Most records have none: their orphans cost no second round trip.
        let orphans = if row.get::<_, bool>("has_orphans") {
            self.orphans(client, id).await?
        } else {
            Vec::new()
        };
        Ok(Some(Versioned::with_orphans(version, tokens, orphans)))
    }

    /// Writes `tokens` over the row `row` (locked `FOR UPDATE` in `tx`; `None`: no row yet) as its next version
    /// (1 for a row without tokens), and notifies waiters at commit.
    async fn write(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: &CredentialId,
        row: Option<&tokio_postgres::Row>,
        tokens: &StoredTokens,
    ) -> Result<u64, StoreError> {
        let version = row.map_or(0, |row| row.get::<_, i64>("version")) + 1;
        let sealed_for = Sealed::Credential {
            version: version as u64,
        };
        let (key_id, sealed) = self.seal(sealed_for, id, tokens)?;
        let notice = Notice::committed_payload(id.as_str(), &self.inner.scope);
        let params: [&(dyn ToSql + Sync); 9] = [
            &id.as_str(),
            &key_id,
            &sealed,
            &tokens.expires_at,
            &tokens.refreshable_until,
            &version,
            &SEAL_FORMAT,
            &CHANNEL,
            &notice,
        ];
        let row = tx
            .query_one(
                "WITH written AS (
                 INSERT INTO refresh_kit_credentials
                        (id, version, key_id, tokens, expires_at, refreshable_until, seal_format)
                 VALUES ($1, $6, $2, $3, $4, $5, $7)
                 ON CONFLICT (id) DO UPDATE
                    SET version = EXCLUDED.version, key_id = EXCLUDED.key_id,
                        tokens = EXCLUDED.tokens, expires_at = EXCLUDED.expires_at,
                        refreshable_until = EXCLUDED.refreshable_until, seal_format = EXCLUDED.seal_format,
                        updated_at = now()
                 RETURNING version)
                 SELECT version, pg_notify($8, $9) FROM written",
                &params,
            )
            .await
            .map_err(database)?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

impl TokenStore for PgStore {
    type Lock = PgLease;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT version, key_id, tokens, seal_format, {HAS_ORPHANS}
                       FROM refresh_kit_credentials c WHERE id = $1"
                ),
                &[&id.as_str()],
            )
            .await
            .map_err(database)?;
        self.record(&client, id, row.as_ref()).await
    }

    async fn compare_and_swap(
        &self,
        lease: &PgLease,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        self.writable()?;
        let (id, fence) = (&lease.id, lease.epoch);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT version, key_id, tokens, seal_format, lease_epoch, {HAS_ORPHANS}
                       FROM refresh_kit_credentials c WHERE id = $1 FOR UPDATE"
                ),
                &[&id.as_str()],
            )
            .await
            .map_err(database)?;
        // Opened first: a record this store cannot read is never written over.
        let current = self.record(&tx, id, row.as_ref()).await?;
        let version = current.as_ref().map(|record| record.version);
        let fenced_out = match (fence, &row) {
            // Under our lease: the row's epoch must still be ours.
            (Some(epoch), Some(row)) => row.get::<_, i64>("lease_epoch") != epoch,
            // The lease was taken on the row, so it is there; a read-only lock writes nothing.
            (Some(_), None) | (None, _) => true,
        };
        if version != expected || fenced_out {
            return Ok(Swap::Conflict { current });
        }
        let version = self.write(&tx, id, row.as_ref(), tokens).await?;
        // Orphans are added only under this row's lock (`keep_orphan`), which this transaction holds: none then,
        // none now.
        if row
            .as_ref()
            .is_some_and(|row| row.get::<_, bool>("has_orphans"))
        {
            self.tend_orphans(&tx, id, version).await?;
        }
        tx.commit().await.map_err(database)?;
        Ok(Swap::Written { version })
    }

    async fn keep_orphan(&self, lease: &PgLease, tokens: &StoredTokens) -> Result<(), StoreError> {
        self.writable()?;
        let id = &lease.id;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(database)?;
        let row = tx
            .query_opt(
                "SELECT version, key_id, tokens, seal_format FROM refresh_kit_credentials WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .await
            .map_err(database)?;
        match row
            .as_ref()
            .map(|row| self.tokens_of(id, row))
            .transpose()?
            .flatten()
        {
            // Without tokens of its own the record takes these: they are the only ones.
            None => {
                self.write(&tx, id, row.as_ref(), tokens).await?;
            }
            Some(_) => {
                let version = row.as_ref().map_or(0, |row| row.get::<_, i64>("version"));
                let lost_to = Sealed::Orphan {
                    lost_to_version: version as u64,
                };
                let (key_id, sealed) = self.seal(lost_to, id, tokens)?;
                tx.execute(
                    "INSERT INTO refresh_kit_orphans (credential_id, key_id, tokens, lost_to_version, seal_format)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id.as_str(), &key_id, &sealed, &version, &SEAL_FORMAT],
                )
                .await
                .map_err(database)?;
            }
        }
        tx.commit().await.map_err(database)
    }

    async fn lock(&self, id: &CredentialId) -> Result<PgLease, StoreError> {
        // Refused before any vendor call: a renewal whose tokens could not be written must not start.
        self.writable()?;
        let lease = self.inner.options.lease;
        loop {
            // Subscribed before the attempt, so that a notice sent after it is not missed.
            let mut notices = self.inner.notices.subscribe();
            let sent = Instant::now();
            let left = match self.try_take(id).await? {
                Take::Taken(epoch) => {
                    return Ok(PgLease {
                        store: self.clone(),
                        id: id.clone(),
                        epoch: Some(epoch),
                        lapses: sent + lease,
                    });
                }
                Take::Held(left) => left,
            };
            // Until a notice about this credential, or the holder's lease lapses (a holder that died sends none).
            let lapsed = tokio::time::sleep(left.min(lease) + Duration::from_millis(10));
            tokio::select! {
                woken = woken(&mut notices, id) => {
                    if woken == Woken::Committed {
                        return Ok(PgLease {
                            store: self.clone(),
                            id: id.clone(),
                            epoch: None,
                            lapses: Instant::now(),
                        });
                    }
                }
                () = lapsed => {}
            }
        }
    }

    fn lock_kind(&self, lease: &PgLease) -> LockKind {
        match lease.epoch {
            Some(_) => LockKind::Lease {
                left: lease.lapses.saturating_duration_since(Instant::now()),
            },
            None => LockKind::ReadOnly,
        }
    }

    /// Nothing to check before the call: the lease was just taken on a live connection, and a write the database
    /// refuses after the call is tried again while the lease lasts, then rescued.
    async fn check_writable(&self, _id: &CredentialId) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives the lease up and waits until the database has: a process that exits right after leaves no lease for
    /// the others to wait out.
    async fn release(&self, mut lease: PgLease) {
        if let Some(epoch) = lease.epoch.take() {
            self.give_up(&lease.id, epoch).await;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Woken {
    /// New tokens are committed: read them.
    Committed,
    /// Try for the lease again.
    Again,
}

async fn woken(notices: &mut broadcast::Receiver<Notice>, id: &CredentialId) -> Woken {
    loop {
        match notices.recv().await {
            Ok(Notice::Committed(of)) if of == id.as_str() => return Woken::Committed,
            Ok(Notice::Released(of)) if of == id.as_str() => return Woken::Again,
            // Notices may have been missed.
            Ok(Notice::Listening) | Err(broadcast::error::RecvError::Lagged(_)) => {
                return Woken::Again;
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for PgLease {
    /// A lease not given up through [`TokenStore::release`] (its holder was cut off) is given up by a task of its
    /// own, if a runtime is there to run it; otherwise it lapses.
    fn drop(&mut self) {
        let Some(epoch) = self.epoch.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, id) = (self.store.clone(), self.id.clone());
        runtime.spawn(async move { store.give_up(&id, epoch).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 2 binds the version (a record's, or the one an orphan lost to); rows of format 1, written before it,
    /// open as they were sealed.
    #[test]
    fn the_seal_binds_the_version_from_format_2_on() {
        let id = CredentialId::new("c").unwrap();
        let record = Sealed::Credential { version: 7 };
        let orphan = Sealed::Orphan { lost_to_version: 7 };
        assert_eq!(PgStore::context(record, 1, &id), b"credential\0c");
        assert_eq!(PgStore::context(orphan, 1, &id), b"orphan\0c");
        assert_eq!(PgStore::context(record, 2, &id), b"credential\x00c\x007");
        assert_eq!(
            PgStore::context(orphan, SEAL_FORMAT, &id),
            b"orphan\x00c\x007"
        );
        assert_ne!(
            PgStore::context(Sealed::Credential { version: 6 }, 2, &id),
            PgStore::context(record, 2, &id)
        );
    }
}
