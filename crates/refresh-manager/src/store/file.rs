//! The embedded default store: one JSON record per credential in a directory.
//!
//! A write never leaves a torn record: the new record goes to a temporary file in the same directory, which is
//! fsynced, renamed over the record, and the directory fsynced, so that after a crash the record is the old one
//! or the new one, and a write that returned is durable. Records and lock files are created 0600 (the directory
//! 0700, and an existing one must belong to this user and be writable by no one else); no record or lock file is
//! opened through a symbolic link. Two advisory locks per credential (`flock`-style, released when the process
//! dies): `<id>@write.lock` around each compare-and-swap, and `<id>@refresh.lock`, held by [`TokenStore::lock`] for
//! as long as a refresh runs. `@` is in no credential id, so no two credentials' files share a name. A lock held
//! longer than the store's lock wait (a holder that was stopped) is an error, not a wait forever.
//! A temporary file left by a writer that died before its rename is removed when the store is next opened, if its
//! credential's write lock is free: every live writer holds that lock, so a temporary file under a free lock is dead.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{StoreError, Swap, TokenStore, Versioned, swap, with_orphan};
use crate::file_system::{FileSystem, LockFile, OsFileSystem, private_dir, write_durably};
use crate::record::{CredentialId, StoredTokens};

/// Records in files under one directory; any number of `FileStore`s, in any number of processes, may share it.
#[derive(Clone, Debug)]
pub struct FileStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    lock_wait: Duration,
}

/// The size of the probe a write check writes: more than a record with a few orphans takes.
const PROBE_BYTES: usize = 16 * 1024;

/// Held while a refresh of one credential runs (an exclusive advisory lock on `<id>@refresh.lock`); dropping it, or the
/// process ending, releases it.
#[derive(Debug)]
pub struct FileLock {
    id: CredentialId,
    _file: Box<dyn LockFile>,
}

impl FileStore {
    /// How long a lock is waited for by default (60 s): far longer than a refresh under it takes (the call timeout
    /// and a write), far shorter than forever.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

    /// The store in `dir`, created (0700) if it does not exist. An existing directory must belong to this user and
    /// be writable by no one else: whoever can write in it can replace a record.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_on(OsFileSystem::shared(), dir)
    }

    /// [`FileStore::open`] over another file system than the operating system's (a test's, which can lose what
    /// was not fsynced).
    pub fn open_on(fs: Arc<dyn FileSystem>, dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        private_dir(&*fs, &dir, 0o022, "token directory")?;
        let store = FileStore {
            fs,
            dir,
            lock_wait: Self::DEFAULT_LOCK_WAIT,
        };
        store.files().remove_dead_temporaries();
        Ok(store)
    }

    /// Waits at most `wait` for a lock (default [`FileStore::DEFAULT_LOCK_WAIT`]); then the store's error says who
    /// to look for.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn files(&self) -> Files {
        Files {
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
            lock_wait: self.lock_wait,
        }
    }

    /// Runs blocking file work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Files) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let files = self.files();
        tokio::task::spawn_blocking(move || work(files))
            .await
            .map_err(|join| StoreError::Io(io::Error::other(join)))?
    }
}

/// The name of a credential's lock that serializes its refreshes.
fn refresh_lock(id: &CredentialId) -> String {
    format!("{id}@refresh.lock")
}

/// The name of a credential's lock around each of its writes.
fn write_lock(id: &CredentialId) -> String {
    format!("{id}@write.lock")
}

/// The blocking file operations, on one store directory.
struct Files {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    lock_wait: Duration,
}

impl Files {
    fn record_name(id: &CredentialId) -> String {
        format!("{id}.json")
    }

    fn read(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        let bytes = match self.fs.read(&self.dir.join(Self::record_name(id))) {
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
        let name = Self::record_name(id);
        write_durably(&*self.fs, &self.dir, &name, id.as_str(), ".tmp", &json)?;
        Ok(())
    }

    /// Removes the temporary files (`.<id>.<random letters and digits>.tmp`) of writers that died before their
    /// rename: those whose credential's write lock is free. One listing of the directory, once per open, never on
    /// the write path. Best effort: a file that cannot be listed, locked or removed only stays behind.
    fn remove_dead_temporaries(&self) {
        let Ok(names) = self.fs.list_dir(&self.dir) else {
            return;
        };
        for name in names {
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
            let Ok(write_lock) = self.fs.open_lock(&self.dir.join(write_lock(&id))) else {
                continue;
            };
            if write_lock.try_lock().is_ok_and(|locked| locked)
                && let Err(error) = self.fs.remove_file(&self.dir.join(&name))
            {
                tracing::debug!(credential = %id, %error, "a dead writer's temporary file stays");
            }
        }
    }

    /// An exclusive advisory lock on `name` in the directory, waiting for it at most the store's lock wait.
    fn lock(&self, name: &str) -> Result<Box<dyn LockFile>, StoreError> {
        let file = self.fs.open_lock(&self.dir.join(name))?;
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            if file.try_lock()? {
                return Ok(file);
            }
            if Instant::now() >= deadline {
                let held = format!(
                    "{} has been held for more than {} s: a process holding it may be stopped \
                     (look for it with `fuser {}`)",
                    name,
                    self.lock_wait.as_secs(),
                    self.dir.join(name).display()
                );
                return Err(io::Error::new(io::ErrorKind::TimedOut, held).into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Writes, fsyncs and removes a temporary file as large as a record: a directory the process may not write
    /// in, a read-only or full file system fails here, before the vendor is asked for tokens it could not keep.
    fn probe(&self, id: &CredentialId) -> Result<(), StoreError> {
        let (path, mut probe) = self
            .fs
            .create_temporary(&self.dir, &format!(".{id}."), ".tmp")?;
        let written = probe
            .write_all(&[0; PROBE_BYTES])
            .and_then(|()| probe.sync());
        drop(probe);
        let removed = self.fs.remove_file(&path);
        written?;
        removed?;
        Ok(())
    }

    /// `change` applied to the current record and written, under the credential's write lock.
    fn update<T>(
        &self,
        id: &CredentialId,
        change: impl FnOnce(Option<Versioned>) -> (Option<Versioned>, T),
    ) -> Result<T, StoreError> {
        let _write_lock = self.lock(&write_lock(id))?;
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
        lock: &FileLock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        let (id, tokens) = (lock.id.clone(), tokens.clone());
        self.blocking(move |files| {
            files.update(&id, |current| swap(current, expected, &tokens, Utc::now()))
        })
        .await
    }

    async fn keep_orphan(&self, lock: &FileLock, tokens: &StoredTokens) -> Result<(), StoreError> {
        let (id, tokens) = (lock.id.clone(), tokens.clone());
        self.blocking(move |files| {
            files.update(&id, |current| {
                (Some(with_orphan(current, &tokens, Utc::now())), ())
            })
        })
        .await
    }

    async fn lock(&self, id: &CredentialId) -> Result<FileLock, StoreError> {
        let (name, id) = (refresh_lock(id), id.clone());
        self.blocking(move |files| files.lock(&name).map(|file| FileLock { id, _file: file }))
            .await
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |files| files.probe(&id)).await
    }

    /// An advisory lock is let go when its file is closed.
    async fn release(&self, lock: FileLock) {
        drop(lock);
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
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

    #[tokio::test]
    async fn a_write_goes_to_the_credential_its_lock_is_held_on() {
        let (_dir, store) = store();
        conformance::a_write_goes_to_the_credential_its_lock_is_held_on(&store).await;
    }

    /// Two stores opened on one directory (as two processes would) share the records and the locks: the locks
    /// belong to each open file, not to the process.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_on_one_directory_share_records_and_locks() {
        let (_dir, one) = store();
        let other = FileStore::open(one.dir()).unwrap();
        conformance::the_lock_lets_one_holder_in_at_a_time(&one, &other).await;
        let id = CredentialId::new("shared").unwrap();
        let _ = one
            .compare_and_swap_under_lock(&id, None, &tokens("1"))
            .await
            .unwrap();
        let swap = other
            .compare_and_swap_under_lock(&id, None, &tokens("2"))
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
                .compare_and_swap_under_lock(&id, expected, &tokens(&version.to_string()))
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
            ["private.json", "private@refresh.lock", "private@write.lock"]
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
        let writing = File::create(store.dir().join("live@write.lock")).unwrap();
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
            .compare_and_swap_under_lock(&id, None, &tokens("kept"))
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
        let write = store
            .compare_and_swap_under_lock(&id, Some(1), &tokens("new"))
            .await;
        assert!(
            matches!(write, Err(StoreError::Corrupt { .. })),
            "a corrupt record is not overwritten"
        );
    }

    /// Makes `dir` refuse new files until dropped: `chattr +i` as root (whom modes do not stop), mode 0500
    /// otherwise.
    struct Unwritable<'a>(&'a Path);

    impl<'a> Unwritable<'a> {
        fn new(dir: &'a Path) -> Self {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                let status = std::process::Command::new("chattr")
                    .arg("+i")
                    .arg(dir)
                    .status()
                    .expect("chattr (e2fsprogs) is installed");
                assert!(status.success());
            } else {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o500)).unwrap();
            }
            Unwritable(dir)
        }
    }

    impl Drop for Unwritable<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(self.0)
                .status();
            let _ = fs::set_permissions(self.0, fs::Permissions::from_mode(0o700));
        }
    }

    /// The write check writes, fsyncs and removes a probe: it passes where a write would, fails where the
    /// directory takes no new file, and leaves nothing behind.
    #[tokio::test]
    async fn the_write_check_fails_where_a_write_would() {
        let (_dir, store) = store();
        let id = CredentialId::new("probed").unwrap();
        store.check_writable(&id).await.unwrap();
        assert_eq!(
            fs::read_dir(store.dir()).unwrap().count(),
            0,
            "the probe is removed"
        );
        let _ = store
            .compare_and_swap_under_lock(&id, None, &tokens("1"))
            .await
            .unwrap();
        let error = {
            let _unwritable = Unwritable::new(store.dir());
            store.check_writable(&id).await.unwrap_err()
        };
        assert!(matches!(error, StoreError::Io(_)), "{error}");
        store.check_writable(&id).await.unwrap();
    }

    /// No credential's files share a name with another's: `a`'s write lock is not `a.write`'s refresh lock.
    #[tokio::test]
    async fn credentials_whose_names_extend_each_other_share_no_lock() {
        let (_dir, store) = store();
        let (a, a_write) = (
            CredentialId::new("a").unwrap(),
            CredentialId::new("a.write").unwrap(),
        );
        let _refreshing = store.lock(&a_write).await.unwrap();
        let write = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            store.compare_and_swap_under_lock(&a, None, &tokens("a")),
        )
        .await
        .expect("a's write waited for a.write's refresh lock");
        assert_eq!(write.unwrap(), Swap::Written { version: 1 });
    }

    /// A lock held past the store's lock wait (its holder was stopped) is an error that says what to look for, not
    /// a wait forever.
    #[tokio::test]
    async fn a_lock_held_past_the_lock_wait_is_an_error() {
        let (_dir, store) = store();
        let store = store.with_lock_wait(std::time::Duration::from_millis(200));
        let id = CredentialId::new("stuck").unwrap();
        let _held = store.lock(&id).await.unwrap();
        let error = store.lock(&id).await.unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains("stuck@refresh.lock") && shown.contains("stopped"),
            "{shown}"
        );
    }

    /// An existing directory others may write in, or that is another user's, is refused; a record or lock file
    /// that is a symbolic link is never followed.
    #[tokio::test]
    async fn a_shared_directory_is_refused_and_links_are_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let shared = base.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let error = FileStore::open(&shared).unwrap_err();
        assert!(error.to_string().contains("chmod 700"), "{error}");
        if unsafe { libc::geteuid() } == 0 {
            let theirs = base.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
            let error = FileStore::open(&theirs).unwrap_err();
            assert!(
                error.to_string().contains("belongs to uid 65534"),
                "{error}"
            );
        }

        let (_dir, store) = store();
        let elsewhere = base.path().join("elsewhere.json");
        fs::write(&elsewhere, b"{}").unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.dir().join("linked.json")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, store.dir().join("linked@refresh.lock")).unwrap();
        let id = CredentialId::new("linked").unwrap();
        assert!(matches!(store.load(&id).await, Err(StoreError::Io(_))));
        assert!(matches!(store.lock(&id).await, Err(StoreError::Io(_))));
        assert_eq!(fs::read(&elsewhere).unwrap(), b"{}");
    }

    /// A corrupt record's error says how to recover without losing what it may hold.
    #[tokio::test]
    async fn a_corrupt_records_error_says_how_to_recover() {
        let (_dir, store) = store();
        fs::write(store.dir().join("broken.json"), b"not json").unwrap();
        let error = store
            .load(&CredentialId::new("broken").unwrap())
            .await
            .unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains("Move it aside") && shown.contains("log the credential in again"),
            "{shown}"
        );
    }
}
