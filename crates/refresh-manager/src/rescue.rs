//! Tokens the store could not take, kept outside it until they are written.
//!
//! When the vendor has answered and the store still refuses the write after every try (a full disk, a directory
//! made read-only, a database gone), the vendor's new refresh token exists nowhere else: the one in the store is
//! spent. A process that exits then would lose the credential. With a [`Rescue`], the manager writes them as
//! `<id>@rescued.json` (0600, atomically and durably, in a 0700 directory of this user's) in the first of its
//! directories that takes them, and every later renewal of the credential, in this process or the next, writes them
//! to the store before it asks the vendor anything, then removes the file. Put the directories on another file
//! system than the store where you can: a full disk refuses a rescue beside the store too.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::file_system::{FileSystem, OsFileSystem, private_dir, write_durably};
use crate::record::{CredentialId, StoredTokens};

const SUFFIX: &str = "@rescued.json";

/// Where the manager keeps tokens its store could not take (see the module docs). Cloning it is cheap.
#[derive(Clone, Debug)]
pub struct Rescue {
    fs: Arc<dyn FileSystem>,
    dirs: Vec<PathBuf>,
}

/// Tokens kept by a [`Rescue`]: what the store failed to take, and what it was to replace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Rescued {
    pub id: CredentialId,
    /// The store version they were refreshed from (`None`: a first login).
    pub refreshed_from: Option<u64>,
    pub by_login: bool,
    pub tokens: StoredTokens,
    pub rescued_at: DateTime<Utc>,
}

impl Rescued {
    /// Tokens to rescue (a store outside this crate, or a test, makes them).
    pub fn new(
        id: CredentialId,
        refreshed_from: Option<u64>,
        by_login: bool,
        tokens: StoredTokens,
        rescued_at: DateTime<Utc>,
    ) -> Self {
        Rescued {
            id,
            refreshed_from,
            by_login,
            tokens,
            rescued_at,
        }
    }
}

impl Rescue {
    /// Rescues go to the first of `dirs` that takes them (each created 0700 if missing).
    pub fn new(dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Rescue {
            fs: OsFileSystem::shared(),
            dirs: dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// The same directories on another file system than the operating system's (a test's).
    pub fn on(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Keeps `rescued` in the first directory that takes it; the error of the last one if none did.
    pub fn keep(&self, rescued: &Rescued) -> io::Result<PathBuf> {
        let json = serde_json::to_vec_pretty(rescued).map_err(io::Error::other)?;
        let mut last = io::Error::other("no rescue directory is configured");
        for dir in &self.dirs {
            match self.write(dir, &rescued.id, &json) {
                Ok(path) => return Ok(path),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// The tokens rescued for `id`, if a directory holds some, with their file. A file that does not read is left
    /// as it is, for an operator, and reported.
    pub fn find(&self, id: &CredentialId) -> Option<(PathBuf, Rescued)> {
        self.dirs.iter().find_map(|dir| {
            let path = dir.join(format!("{id}{SUFFIX}"));
            match self.read(&path) {
                Ok(rescued) if rescued.id == *id => Some((path, rescued)),
                Ok(_) => None,
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => {
                    tracing::error!(credential = %id, path = %path.display(), %error,
                        "a rescue file does not read; it is left as it is");
                    None
                }
            }
        })
    }

    /// Whether a file for `id` is there (read or not).
    pub fn holds(&self, id: &CredentialId) -> bool {
        self.dirs.iter().any(|dir| {
            self.fs
                .owner_and_mode(&dir.join(format!("{id}{SUFFIX}")))
                .is_ok()
        })
    }

    /// Every rescue that reads, in every directory: what `refresh status` shows.
    pub fn list(&self) -> Vec<Rescued> {
        let mut all = Vec::new();
        for dir in &self.dirs {
            let Ok(names) = self.fs.list_dir(dir) else {
                continue;
            };
            for name in names {
                if name.to_str().is_some_and(|name| name.ends_with(SUFFIX))
                    && let Ok(rescued) = self.read(&dir.join(&name))
                {
                    all.push(rescued);
                }
            }
        }
        all
    }

    /// Removes a rescue file once its tokens are in the store.
    /// Durably: a power cut must not bring back tokens that are long stored (they would be written again, and
    /// kept as an orphan, for nothing).
    pub(crate) fn remove(&self, path: &Path) {
        let removed = self
            .fs
            .remove_file(path)
            .and_then(|()| match path.parent() {
                Some(dir) => self.fs.sync_dir(dir),
                None => Ok(()),
            });
        if let Err(error) = removed
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "a rescue file whose tokens are stored could not be removed");
        }
    }
}

impl Rescue {
    fn read(&self, path: &Path) -> io::Result<Rescued> {
        let bytes = self.fs.read(path)?;
        // serde's message can quote a value, which may be a token: keep only where it failed.
        serde_json::from_slice(&bytes).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "not a rescue file at line {}, column {}",
                    error.line(),
                    error.column()
                ),
            )
        })
    }

    /// Writes `json` as `<dir>/<id>@rescued.json`, durably, in a private directory of this user's.
    fn write(&self, dir: &Path, id: &CredentialId, json: &[u8]) -> io::Result<PathBuf> {
        private_dir(&*self.fs, dir, 0o077, "rescue directory")?;
        let name = format!("{id}{SUFFIX}");
        write_durably(&*self.fs, dir, &name, id.as_str(), ".rescue", json)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::record::tests::tokens;

    fn rescued(id: &str, tag: &str) -> Rescued {
        Rescued {
            id: CredentialId::new(id).unwrap(),
            refreshed_from: Some(3),
            by_login: false,
            tokens: tokens(tag),
            rescued_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    /// The first directory that takes a rescue keeps it (0600 in a 0700 directory); it is found by id, listed, and
    /// gone once removed. A directory that cannot be made is passed over.
    #[test]
    fn a_rescue_is_kept_in_the_first_directory_that_takes_it_and_found_again() {
        let base = tempfile::tempdir().unwrap();
        let blocked = base.path().join("a-file");
        fs::write(&blocked, b"not a directory").unwrap();
        let second = base.path().join("rescue");
        let rescue = Rescue::new([blocked.join("sub"), second.clone()]);
        let kept = rescued("alpha", "new");
        let path = rescue.keep(&kept).unwrap();
        assert_eq!(path, second.join("alpha@rescued.json"));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&second).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let id = CredentialId::new("alpha").unwrap();
        assert!(rescue.holds(&id));
        assert_eq!(rescue.find(&id), Some((path.clone(), kept.clone())));
        assert_eq!(rescue.list(), vec![kept]);
        assert_eq!(rescue.find(&CredentialId::new("beta").unwrap()), None);
        rescue.remove(&path);
        assert!(!rescue.holds(&id) && rescue.find(&id).is_none());
    }

    /// No directory takes it: the error says why; a file that does not read is left alone and not returned.
    #[test]
    fn a_rescue_nowhere_is_an_error_and_a_damaged_file_is_left_alone() {
        let base = tempfile::tempdir().unwrap();
        let blocked = base.path().join("a-file");
        fs::write(&blocked, b"x").unwrap();
        assert!(
            Rescue::new([blocked.join("sub")])
                .keep(&rescued("a", "t"))
                .is_err()
        );
        assert!(
            Rescue::new(Vec::<PathBuf>::new())
                .keep(&rescued("a", "t"))
                .is_err()
        );

        let dir = base.path().join("rescue");
        let rescue = Rescue::new([dir.clone()]);
        rescue.keep(&rescued("damaged", "t")).unwrap();
        let path = dir.join("damaged@rescued.json");
        fs::write(&path, b"{\"id\": \"damaged\", \"tokens\": \"refresh-secret").unwrap();
        let id = CredentialId::new("damaged").unwrap();
        assert_eq!(rescue.find(&id), None);
        assert!(path.exists() && rescue.holds(&id));

        // A directory others may enter is passed over for the next one.
        let open_dir = base.path().join("open");
        fs::create_dir(&open_dir).unwrap();
        fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let private = base.path().join("private");
        let kept = Rescue::new([open_dir.clone(), private.clone()])
            .keep(&rescued("careful", "t"))
            .unwrap();
        assert!(kept.starts_with(&private), "{}", kept.display());
        assert_eq!(fs::read_dir(&open_dir).unwrap().count(), 0);

        // A file under one credential's name that holds another's tokens is not that credential's.
        let moved = rescue.keep(&rescued("other", "t")).unwrap();
        fs::rename(&moved, dir.join("third@rescued.json")).unwrap();
        assert_eq!(rescue.find(&CredentialId::new("third").unwrap()), None);
    }
}
