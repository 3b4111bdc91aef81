//! A PostgreSQL [`TokenStore`](refresh_manager::TokenStore) for services that run as many replicas sharing one
//! vendor credential: a rotated refresh token used twice kills the credential, so exactly one replica refreshes.
//!
//! ```no_run
//! use refresh_manager::Manager;
//! use refresh_postgres::{Keyring, PgStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // `REFRESH_KIT_PG_KEYS="2026-01:<32 bytes in base64>"` (current key first, then older ones).
//! let keys = Keyring::from_env("REFRESH_KIT_PG_KEYS")?;
//! let store = PgStore::connect("postgres://tokens@db.internal/app", keys).await?;
//! let manager = Manager::new(store);
//! # Ok(())
//! # }
//! ```
//!
//! - **One row per credential** (`refresh_kit_credentials`): version, the sealed tokens, expiry, lease owner,
//!   lease epoch and `lease_until`, on the database server's clock. Migrations are applied by the store.
//! - **Fenced leases.** [`TokenStore::lock`](refresh_manager::TokenStore::lock) takes the lease with one
//!   conditional `UPDATE` that bumps the epoch; every write is made under a lease ([`PgLease`]), and succeeds only
//!   while the row's `lease_epoch` is still that lease's. A holder whose lease could lapse before a vendor call
//!   could finish does not send it ([`TokenStore::lock_kind`](refresh_manager::TokenStore::lock_kind)).
//! - **Waking waiters.** The other replicas wait on `LISTEN/NOTIFY`, and read the new tokens once committed.
//! - **Orphans.** A vendor answer whose fenced write was refused goes to `refresh_kit_orphans`, never dropped.
//! - **Encrypted at rest.** AES-256-GCM under a [`Keyring`] the service provides; a key id per row lets keys
//!   rotate. A wrong key is [`StoreError::Key`](refresh_manager::StoreError::Key), and nothing is written over
//!   what it cannot open.
//!
//! - **TLS** as libpq reads it from the connection string: `sslmode` and `sslrootcert`
//!   (`postgres://tokens@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem`).
//!
//! The database is never on the read path: the manager serves cached tokens from memory, and keeps serving a
//! still-valid one while the database is unreachable.

mod cipher;
mod connection;
mod error;
mod listen;
mod schema;
mod store;
mod tls;

pub use cipher::{KeyError, Keyring};
pub use error::ConnectionError;
pub use store::{LeaseHolder, PgLease, PgStore, PgStoreOptions};
pub use tls::SslMode;
