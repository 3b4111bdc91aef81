//! The file operations [`FileStore`](crate::FileStore) and [`Rescue`](crate::Rescue) are made of, behind one
//! trait, so that a test can run them over a file system it controls.
//!
//! A process killed between two writes proves little about durability: the kernel keeps its page cache, and the
//! write lands anyway. A power cut does not keep it. [`OsFileSystem`] is the real one; the lifecycle simulation
//! runs the same stores over a file system that models the page cache (data and directory entries not yet
//! fsynced are lost on a simulated power cut), which is how the fsync discipline below is tested.
//!
//! The discipline, written once in `write_durably`: write a temporary file in the same directory, fsync it,
//! rename it over the target, fsync the directory. After a power cut the target is the old file or the new one,
//! whole, and a write that returned is durable.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file operations the stores use. Every method blocks; the stores call them off the async runtime.
pub trait FileSystem: fmt::Debug + Send + Sync + 'static {
    /// Creates `dir` and its missing parents, each 0700.
    fn create_private_dir(&self, dir: &Path) -> io::Result<()>;
    /// The owner's uid and the permission bits of `path`.
    fn owner_and_mode(&self, path: &Path) -> io::Result<(u32, u32)>;
    /// The whole content of the file at `path`, never through a symbolic link (`NotFound` if there is none).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A new file (0600) named `<prefix><random letters and digits><suffix>` in `dir`, open for writing.
    fn create_temporary(
        &self,
        dir: &Path,
        prefix: &str,
        suffix: &str,
    ) -> io::Result<(PathBuf, Box<dyn TemporaryFile>)>;
    /// Renames `from` over `to` (atomically, in one directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// The lock file at `path`, created (0600) if missing, never through a symbolic link. Its lock is advisory,
    /// exclusive, held by the open file, and let go when it is dropped or its process dies.
    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn LockFile>>;
}

/// A file being written by [`FileSystem::create_temporary`].
pub trait TemporaryFile: Send {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes what was written durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
}

/// An open lock file (see [`FileSystem::open_lock`]).
pub trait LockFile: fmt::Debug + Send + Sync {
    /// Takes the lock if it is free: `Ok(false)` if another open file holds it.
    fn try_lock(&self) -> io::Result<bool>;
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFileSystem;

impl OsFileSystem {
    /// The operating system's file system, as the stores hold it.
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(OsFileSystem)
    }
}

impl FileSystem for OsFileSystem {
    fn create_private_dir(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    fn owner_and_mode(&self, path: &Path) -> io::Result<(u32, u32)> {
        let metadata = fs::metadata(path)?;
        Ok((metadata.uid(), metadata.mode() & 0o7777))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn create_temporary(
        &self,
        dir: &Path,
        prefix: &str,
        suffix: &str,
    ) -> io::Result<(PathBuf, Box<dyn TemporaryFile>)> {
        // tempfile creates the file 0600, with O_EXCL; kept, it is ours to rename or remove.
        let (file, path) = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile_in(dir)?
            .keep()
            .map_err(|error| error.error)?;
        Ok((path, Box::new(OsTemporary(file))))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect()
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn LockFile>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Box::new(OsLock(file)))
    }
}

struct OsTemporary(File);

impl TemporaryFile for OsTemporary {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

#[derive(Debug)]
struct OsLock(File);

impl LockFile for OsLock {
    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }
}

/// Replaces `<dir>/<name>` with `bytes`, atomically and durably: a temporary file (`.<stem>.<random><suffix>`),
/// fsynced, renamed over it, and the directory fsynced. A temporary file left by a failure is removed.
pub(crate) fn write_durably(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    stem: &str,
    suffix: &str,
    bytes: &[u8],
) -> io::Result<PathBuf> {
    let target = dir.join(name);
    let (temporary, mut file) = fs.create_temporary(dir, &format!(".{stem}."), suffix)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync())
        .and_then(|()| {
            drop(file);
            fs.rename(&temporary, &target)
        });
    if let Err(error) = written {
        let _ = fs.remove_file(&temporary);
        return Err(error);
    }
    fs.sync_dir(dir)?;
    Ok(target)
}

/// Creates `dir` (0700) if missing, and refuses it unless it is this user's and `forbidden` bits of its mode are
/// clear; `advice` says what to do about a directory that is too open.
pub(crate) fn private_dir(
    fs: &dyn FileSystem,
    dir: &Path,
    forbidden: u32,
    what: &str,
) -> io::Result<()> {
    fs.create_private_dir(dir)?;
    let (owner, mode) = fs.owner_and_mode(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the {what} {} belongs to uid {owner}, not to this process's uid {me}: \
                 give each user a directory of its own",
                dir.display(),
            ),
        ));
    }
    let mode = mode & 0o777;
    if mode & forbidden != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the {what} {} is open to others (mode {mode:o}): run `chmod 700 {}`",
                dir.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}
