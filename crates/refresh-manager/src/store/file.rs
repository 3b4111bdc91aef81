//! The embedded default store: one JSON record per credential in a directory.
//!
//! A write never leaves a torn record: the new record goes to a temporary file in the same directory, which is
//! fsynced, renamed over the record, and the directory fsynced, so that after a crash the record is the old one
//! or the new one, and a write that returned is durable. Records and lock files are created 0600 (the directory
//! 0700). Two advisory locks per credential (`flock`-style, released when the process dies): `<id>.write.lock`
//! around each compare-and-swap, and `<id>.lock`, held by [`TokenStore::lock`] for as long as a refresh runs.
//! A temporary file left by a writer that died before its rename is removed when the store is next opened, if its
//! credential's write lock is free: every live writer holds that lock, so a temporary file under a free lock is dead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{StoreError, Swap, TokenStore, Versioned, swap, with_orphan};
use crate::record::{CredentialId, StoredTokens};

/// Records in files under one directory; any number of `FileStore`s, in any number of processes, may share it.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

/// Held while a refresh of one credential runs (an exclusive advisory lock on `<id>.lock`); dropping it, or the
/// process ending, releases it.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileStore {
    /// The store in `dir`, created (0700) if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Files { dir: dir.clone() }.remove_dead_temporaries();
        Ok(FileStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs blocking file work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Files) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let files = Files {
            dir: self.dir.clone(),
        };
        tokio::task::spawn_blocking(move || work(files))
            .await
            .map_err(|join| StoreError::Io(io::Error::other(join)))?
    }
}

/// The blocking file operations, on one store directory.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn record(&self, id: &CredentialId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn read(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        let bytes = match fs::read(self.record(id)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        // serde's message can quote a value, which may be a token: keep only where it failed.
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| StoreError::Corrupt {
                id: id.clone(),
                reason: format!(
                    "not a record at line {}, column {}",
                    error.line(),
                    error.column()
                ),
            })
    }

    /// Replaces the record atomically and durably.
    fn write(&self, id: &CredentialId, record: &Versioned) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        // tempfile creates the file 0600.
        let mut temporary = tempfile::Builder::new()
            .prefix(&format!(".{id}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        temporary.write_all(&json)?;
        temporary.as_file().sync_all()?;
        temporary
            .persist(self.record(id))
            .map_err(|error| error.error)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Removes the temporary files (`.<id>.<random letters and digits>.tmp`) of writers that died before their
    /// rename: those whose credential's write lock is free. One listing of the directory, once per open, never on
    /// the write path. Best effort: a file that cannot be listed, locked or removed only stays behind.
    fn remove_dead_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((id, random)) = name
                .to_str()
                .and_then(|name| name.strip_prefix('.')?.strip_suffix(".tmp"))
                .and_then(|rest| rest.rsplit_once('.'))
            else {
                continue;
            };
            let Ok(id) = CredentialId::new(id) else {
                continue;
            };
            if !random.chars().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            let Ok(write_lock) = self.lock_file(&format!("{id}.write.lock")) else {
                continue;
            };
            if write_lock.try_lock().is_ok()
                && let Err(error) = fs::remove_file(entry.path())
            {
                tracing::debug!(credential = %id, %error, "a dead writer's temporary file stays");
            }
        }
    }

    /// An exclusive advisory lock on `name` in the directory, waiting for it.
    fn lock(&self, name: &str) -> Result<File, StoreError> {
        let file = self.lock_file(name)?;
        file.lock()?;
        Ok(file)
    }

    /// The lock file `name` in the directory, created (0600) if it does not exist.
    fn lock_file(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(name))
    }

    /// `change` applied to the current record and written, under the credential's write lock.
    fn update<T>(
        &self,
        id: &CredentialId,
        change: impl FnOnce(Option<Versioned>) -> (Option<Versioned>, T),
    ) -> Result<T, StoreError> {
        let _write_lock = self.lock(&format!("{id}.write.lock"))?;
        let (record, outcome) = change(self.read(id)?);
        if let Some(record) = record {
            self.write(id, &record)?;
        }
        Ok(outcome)
    }
}

impl TokenStore for FileStore {
    type Lock = FileLock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        let id = id.clone();
        self.blocking(move |files| files.read(&id)).await
    }

    async fn compare_and_swap(
        &self,
        id: &CredentialId,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        let (id, tokens) = (id.clone(), tokens.clone());
        self.blocking(move |files| {
            files.update(&id, |current| swap(current, expected, &tokens, Utc::now()))
        })
        .await
    }

    async fn keep_orphan(
        &self,
        id: &CredentialId,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        let (id, tokens) = (id.clone(), tokens.clone());
        self.blocking(move |files| {
            files.update(&id, |current| {
                (Some(with_orphan(current, &tokens, Utc::now())), ())
            })
        })
        .await
    }

    async fn lock(&self, id: &CredentialId) -> Result<FileLock, StoreError> {
        let name = format!("{id}.lock");
        self.blocking(move |files| files.lock(&name).map(|file| FileLock { _file: file }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::record::tests::tokens;
    use crate::store::conformance;

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("tokens")).unwrap();
        (dir, store)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn compare_and_swap_writes_only_the_expected_version() {
        let (_dir, store) = store();
        conformance::compare_and_swap_writes_only_the_expected_version(&store).await;
    }

    #[tokio::test]
    async fn orphans_are_kept_across_writes() {
        let (_dir, store) = store();
        conformance::orphans_are_kept_across_writes(&store).await;
    }

    #[tokio::test]
    async fn orphans_are_pruned_to_the_most_a_credential_keeps() {
        let (_dir, store) = store();
        conformance::orphans_are_pruned_to_the_most_a_credential_keeps(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_racing_writers_exactly_one_wins() {
        let (_dir, store) = store();
        conformance::of_racing_writers_exactly_one_wins(Arc::new(store)).await;
    }

    /// Two stores opened on one directory (as two processes would) share the records and the locks: the locks
    /// belong to each open file, not to the process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_on_one_directory_share_records_and_locks() {
        let (_dir, one) = store();
        let other = FileStore::open(one.dir()).unwrap();
        conformance::the_lock_lets_one_holder_in_at_a_time(&one, &other).await;
        let id = CredentialId::new("shared").unwrap();
        let _ = one.compare_and_swap(&id, None, &tokens("1")).await.unwrap();
        let swap = other
            .compare_and_swap(&id, None, &tokens("2"))
            .await
            .unwrap();
        assert!(matches!(swap, Swap::Conflict { current: Some(ref r) } if r.tokens == tokens("1")));
    }

    #[tokio::test]
    async fn records_are_private_and_writes_leave_no_temporary_file() {
        let (_dir, store) = store();
        assert_eq!(mode(store.dir()), 0o700);
        let id = CredentialId::new("private").unwrap();
        for version in 0..3 {
            let expected = (version > 0).then_some(version);
            let _ = store
                .compare_and_swap(&id, expected, &tokens(&version.to_string()))
                .await
                .unwrap();
        }
        let _lock = store.lock(&id).await.unwrap();
        let mut names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["private.json", "private.lock", "private.write.lock"]
        );
        for name in &names {
            assert_eq!(mode(&store.dir().join(name)), 0o600, "{name}");
        }
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(store.dir().join("private.json")).unwrap()).unwrap();
        assert_eq!(record["version"], 3);
        assert_eq!(record["tokens"]["refresh_token"], "refresh-2");
    }

    /// A writer killed between creating its temporary file and the rename leaves the file behind; opening the store
    /// removes it, and leaves alone the file of a live writer (it holds the credential's write lock) and files that
    /// are not a writer's.
    #[tokio::test]
    async fn opening_the_store_removes_the_temporary_files_of_dead_writers_only() {
        let (_dir, store) = store();
        let dead = [".a.Xy12z9.tmp", ".a.b.Qw34e5.tmp"];
        let live = ".live.Xy12z9.tmp";
        let not_ours = [".a.Xy-12z9.tmp", ".not an id.Xy12z9.tmp", "a.json.tmp"];
        for name in dead.iter().chain([&live]).chain(&not_ours) {
            fs::write(store.dir().join(name), b"{\"version\": 2, \"tok").unwrap();
        }
        let writing = File::create(store.dir().join("live.write.lock")).unwrap();
        writing.lock().unwrap();
        let reopened = FileStore::open(store.dir()).unwrap();
        for name in dead {
            assert!(!reopened.dir().join(name).exists(), "{name}");
        }
        for name in not_ours.iter().chain([&live]) {
            assert!(reopened.dir().join(name).exists(), "{name}");
        }
    }

    /// A record that cannot be read is an error, not "no record" (which would invite a new login).
    #[tokio::test]
    async fn an_unreadable_record_is_an_error_not_an_absent_one() {
        let (_dir, store) = store();
        let id = CredentialId::new("unreadable").unwrap();
        fs::create_dir(store.dir().join("unreadable.json")).unwrap();
        let error = store.load(&id).await.unwrap_err();
        assert!(matches!(error, StoreError::Io(_)), "{error}");
    }

    /// What a crash mid-write leaves (a temporary file) is never read; what another program left in a record's
    /// place is a typed error that names the credential and quotes nothing of it.
    #[tokio::test]
    async fn a_torn_write_is_invisible_and_a_corrupt_record_is_a_typed_error() {
        let (_dir, store) = store();
        let id = CredentialId::new("torn").unwrap();
        let _ = store
            .compare_and_swap(&id, None, &tokens("kept"))
            .await
            .unwrap();
        fs::write(
            store.dir().join(".torn.abc123.tmp"),
            b"{\"version\": 2, \"tok",
        )
        .unwrap();
        assert_eq!(
            store.load(&id).await.unwrap().unwrap().tokens,
            tokens("kept")
        );

        fs::write(
            store.dir().join("torn.json"),
            b"{\"version\": \"secret-token-text\"}",
        )
        .unwrap();
        let error = store.load(&id).await.unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        let shown = error.to_string();
        assert!(
            shown.contains("torn") && !shown.contains("secret-token-text"),
            "{shown}"
        );
        let write = store.compare_and_swap(&id, Some(1), &tokens("new")).await;
        assert!(
            matches!(write, Err(StoreError::Corrupt { .. })),
            "a corrupt record is not overwritten"
        );
    }
}
