//! A file system in memory with a page cache: what was written but not fsynced (a file's data, or a directory's
//! entries) is lost on [`PageCacheFs::power_cut`], as a real machine loses it. A process killed by a signal
//! cannot show this, since the kernel keeps its page cache; this is how the stores' fsync discipline is tested.
//!
//! The model, per POSIX as Linux file systems honour it:
//! - a file's data is durable once the file is fsynced;
//! - a directory's entries (a creation, a rename, a removal) are durable once the directory is fsynced: fsyncing
//!   a new file does not make its name durable;
//! - directories themselves are created durably (the stores create theirs once, at open);
//! - locks belong to an open lock file and vanish with the power, or with the process holding them.
//!
//! Each process sees the disk through a [`ProcessFs`] of its own. Once the process is killed, or the power it ran
//! on is gone, every operation of its view fails: a task of a dead process that was still running (a blocking
//! write) writes nothing after its death.
//!
//! It can also fill up: [`PageCacheFs::fill_for`] makes the next writes fail with `ENOSPC` after writing half of
//! what they were given (a torn write).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use refresh_manager::file_system::{FileSystem, LockFile, TemporaryFile};

/// The disk (see the module docs). Cloning it shares the disk.
#[derive(Clone, Debug, Default)]
pub struct PageCacheFs(Arc<Mutex<Disk>>);

/// One process's view of a [`PageCacheFs`]: the [`FileSystem`] its stores run on.
#[derive(Clone, Debug)]
pub struct ProcessFs {
    disk: PageCacheFs,
    life: Arc<Life>,
}

#[derive(Debug)]
struct Life {
    id: u64,
    /// The power cuts before it started.
    born: u64,
    killed: AtomicBool,
}

#[derive(Debug, Default)]
struct Disk {
    dirs: HashMap<PathBuf, Dir>,
    inodes: HashMap<u64, Inode>,
    /// Lock file path → the open lock file holding it, and its process.
    locks: HashMap<PathBuf, (u64, u64)>,
    next_id: u64,
    /// Power cuts so far: a handle opened before the last one belongs to a process that died with it.
    epoch: u64,
    /// Writes still to fail with `ENOSPC`.
    full_for: usize,
    /// Operations left before a planned power cut.
    cut_at: Option<usize>,
    stats: Stats,
}

/// What the disk went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub power_cuts: usize,
    /// Files whose data, at a cut, differed from what was last fsynced.
    pub unsynced_files_lost: usize,
    /// Directories whose entries, at a cut, differed from what was last fsynced.
    pub unsynced_dirs_lost: usize,
    pub writes_refused: usize,
}

#[derive(Debug, Default)]
struct Dir {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn gone() -> io::Error {
    io::Error::other("the file's process died with the power (EIO)")
}

fn split(path: &Path) -> io::Result<(&Path, OsString)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name.to_owned())),
        _ => Err(not_found(path)),
    }
}

impl PageCacheFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new process's view of the disk.
    pub fn process(&self) -> ProcessFs {
        let mut disk = self.disk();
        disk.next_id += 1;
        ProcessFs {
            disk: self.clone(),
            life: Arc::new(Life {
                id: disk.next_id,
                born: disk.epoch,
                killed: AtomicBool::new(false),
            }),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The power goes: every file is what it was when last fsynced, every directory lists what it listed when last
    /// fsynced, every lock is let go, and every file open before is dead.
    pub fn power_cut(&self) {
        self.disk().cut();
    }

    /// The power goes during the `operations`-th file operation from now (before it takes effect), which fails,
    /// as does every later one of the processes it took: a crash point for every step of a write.
    pub fn cut_power_at(&self, operations: usize) {
        self.disk().cut_at = Some(operations);
    }

    /// The next `writes` writes fail with `ENOSPC`, each after writing half of its bytes.
    pub fn fill_for(&self, writes: usize) {
        self.disk().full_for = writes;
    }

    /// Whether writes still fail with `ENOSPC`.
    pub fn is_full(&self) -> bool {
        self.disk().full_for > 0
    }

    /// Empties the disk for now: how many writes were still to fail.
    pub fn take_full(&self) -> usize {
        std::mem::take(&mut self.disk().full_for)
    }

    pub fn stats(&self) -> Stats {
        self.disk().stats
    }

    /// The content of the file at `path` (tests look).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk();
        let id = disk.lookup(path).ok()?;
        Some(disk.inodes[&id].data.clone())
    }

    /// The names in `dir` (tests look; no operation is counted).
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let disk = self.disk();
        disk.dirs.get(dir).map_or_else(Vec::new, |dir| {
            dir.entries
                .keys()
                .map(|name| name.to_string_lossy().into_owned())
                .collect()
        })
    }
}

impl Disk {
    fn cut(&mut self) {
        self.epoch += 1;
        self.cut_at = None;
        self.stats.power_cuts += 1;
        self.locks.clear();
        for dir in self.dirs.values_mut() {
            if dir.entries != dir.durable {
                self.stats.unsynced_dirs_lost += 1;
            }
            dir.entries = dir.durable.clone();
        }
        for inode in self.inodes.values_mut() {
            if inode.data != inode.durable {
                self.stats.unsynced_files_lost += 1;
            }
            inode.data = inode.durable.clone();
        }
        let linked: std::collections::HashSet<u64> = self
            .dirs
            .values()
            .flat_map(|dir| dir.entries.values().copied())
            .collect();
        self.inodes.retain(|id, _| linked.contains(id));
    }

    /// Counts one operation towards a planned power cut; the one it falls on fails.
    fn operate(&mut self) -> io::Result<()> {
        match self.cut_at {
            Some(0) => {
                self.cut();
                Err(gone())
            }
            Some(n) => {
                self.cut_at = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn dir(&mut self, path: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(path).ok_or_else(|| not_found(path))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(dir)
            .and_then(|dir| dir.entries.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn new_inode(&mut self) -> u64 {
        self.next_id += 1;
        self.inodes.insert(self.next_id, Inode::default());
        self.next_id
    }
}

impl ProcessFs {
    /// As the stores hold it.
    pub fn shared(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    /// The process dies: its locks are let go, and it does nothing more. What it wrote stays in the page cache.
    pub fn kill(&self) {
        let mut disk = self.disk.disk();
        self.life.killed.store(true, Ordering::SeqCst);
        let me = self.life.id;
        disk.locks.retain(|_, (_, process)| *process != me);
    }

    /// The disk, if this process is alive; one operation counted towards a planned power cut.
    fn alive(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let mut disk = self.disk.disk();
        if self.life.killed.load(Ordering::SeqCst) || self.life.born != disk.epoch {
            return Err(gone());
        }
        disk.operate()?;
        Ok(disk)
    }
}

impl FileSystem for ProcessFs {
    fn create_private_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        for ancestor in dir.ancestors() {
            disk.dirs.entry(ancestor.to_owned()).or_default();
        }
        Ok(())
    }

    fn owner_and_mode(&self, path: &Path) -> io::Result<(u32, u32)> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let disk = self.disk.disk();
        if disk.dirs.contains_key(path) {
            return Ok((me, 0o700));
        }
        disk.lookup(path).map(|_| (me, 0o600))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.alive()?;
        let id = disk.lookup(path)?;
        Ok(disk.inodes[&id].data.clone())
    }

    fn create_temporary(
        &self,
        dir: &Path,
        prefix: &str,
        suffix: &str,
    ) -> io::Result<(PathBuf, Box<dyn TemporaryFile>)> {
        let mut disk = self.alive()?;
        let id = disk.new_inode();
        let name = OsString::from(format!("{prefix}t{id:06}{suffix}"));
        disk.dir(dir)?.entries.insert(name.clone(), id);
        Ok((
            dir.join(name),
            Box::new(Temporary {
                fs: self.clone(),
                id,
            }),
        ))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        let ((from_dir, from_name), (to_dir, to_name)) = (split(from)?, split(to)?);
        assert_eq!(from_dir, to_dir, "the stores rename within one directory");
        let dir = disk.dir(from_dir)?;
        let id = dir
            .entries
            .remove(&from_name)
            .ok_or_else(|| not_found(from))?;
        dir.entries.insert(to_name, id);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        let dir = disk.dir(dir)?;
        dir.durable = dir.entries.clone();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.alive()?;
        let (dir, name) = split(path)?;
        disk.dir(dir)?
            .entries
            .remove(&name)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut disk = self.alive()?;
        Ok(disk.dir(dir)?.entries.keys().cloned().collect())
    }

    fn open_lock(&self, path: &Path) -> io::Result<Box<dyn LockFile>> {
        let mut disk = self.alive()?;
        if disk.lookup(path).is_err() {
            let (dir, name) = split(path)?;
            let id = disk.new_inode();
            disk.dir(dir)?.entries.insert(name, id);
        }
        disk.next_id += 1;
        Ok(Box::new(Lock {
            fs: self.clone(),
            path: path.to_owned(),
            handle: disk.next_id,
        }))
    }
}

struct Temporary {
    fs: ProcessFs,
    id: u64,
}

impl TemporaryFile for Temporary {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.fs.alive()?;
        let torn = disk.full_for > 0;
        let written = if torn {
            &bytes[..bytes.len() / 2]
        } else {
            bytes
        };
        let inode = disk.inodes.get_mut(&self.id).ok_or_else(gone)?;
        inode.data.extend_from_slice(written);
        if torn {
            disk.full_for -= 1;
            disk.stats.writes_refused += 1;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.fs.alive()?;
        let inode = disk.inodes.get_mut(&self.id).ok_or_else(gone)?;
        inode.durable = inode.data.clone();
        Ok(())
    }
}

struct Lock {
    fs: ProcessFs,
    path: PathBuf,
    handle: u64,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lock({})", self.path.display())
    }
}

impl LockFile for Lock {
    fn try_lock(&self) -> io::Result<bool> {
        let mut disk = self.fs.alive()?;
        let holder = disk
            .locks
            .entry(self.path.clone())
            .or_insert((self.handle, self.fs.life.id));
        Ok(holder.0 == self.handle)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let mut disk = self.fs.disk.disk();
        if disk.locks.get(&self.path).map(|held| held.0) == Some(self.handle) {
            disk.locks.remove(&self.path);
        }
    }
}
