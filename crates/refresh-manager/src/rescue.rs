//! Tokens the store could not take, kept outside it until they are written.
//!
//! When the vendor has answered and the store still refuses the write after every try (a full disk, a directory
//! made read-only, a database gone), the vendor's new refresh token exists nowhere else: the one in the store is
//! spent. A process that exits then would lose the credential. With a [`Rescue`], the manager writes them as
//! `<id>@rescued.json` (0600, atomically and durably, in a 0700 directory of this user's) in the first of its
//! directories that takes them, and every later renewal of the credential, in this process or the next, writes them
//! to the store before it asks the vendor anything, then removes the file. Put the directories on another file
//! system than the store where you can: a full disk refuses a rescue beside the store too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::record::{CredentialId, StoredTokens};

const SUFFIX: &str = "@rescued.json";

/// Where the manager keeps tokens its store could not take (see the module docs). Cloning it is cheap.
#[derive(Clone, Debug)]
pub struct Rescue {
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
            dirs: dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// Keeps `rescued` in the first directory that takes it; the error of the last one if none did.
    pub fn keep(&self, rescued: &Rescued) -> io::Result<PathBuf> {
        let json = serde_json::to_vec_pretty(rescued).map_err(io::Error::other)?;
        let mut last = io::Error::other("no rescue directory is configured");
        for dir in &self.dirs {
            match write_durably(dir, &rescued.id, &json) {
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
            match read(&path) {
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
        self.dirs
            .iter()
            .any(|dir| dir.join(format!("{id}{SUFFIX}")).exists())
    }

    /// Every rescue that reads, in every directory: what `refresh status` shows.
    pub fn list(&self) -> Vec<Rescued> {
        let mut all = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_str().is_some_and(|name| name.ends_with(SUFFIX))
                    && let Ok(rescued) = read(&entry.path())
                {
                    all.push(rescued);
                }
            }
        }
        all
    }

    /// Removes a rescue file once its tokens are in the store.
    pub(crate) fn remove(path: &Path) {
        if let Err(error) = fs::remove_file(path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "a rescue file whose tokens are stored could not be removed");
        }
    }
}

fn read(path: &Path) -> io::Result<Rescued> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
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

/// Writes `json` as `<dir>/<id>@rescued.json`: temporary file, fsync, rename, directory fsync.
fn write_durably(dir: &Path, id: &CredentialId, json: &[u8]) -> io::Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let metadata = fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me || metadata.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the rescue directory {} must be this user's and private (chmod 700)",
                dir.display()
            ),
        ));
    }
    let path = dir.join(format!("{id}{SUFFIX}"));
    // tempfile creates the file 0600.
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{id}."))
        .suffix(".rescue")
        .tempfile_in(dir)?;
    temporary.write_all(json)?;
    temporary.as_file().sync_all()?;
    temporary.persist(&path).map_err(|error| error.error)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
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
        Rescue::remove(&path);
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
