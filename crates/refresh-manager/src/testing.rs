//! Test support shared by the crates that test stores across processes (feature `testing`): a store that says when
//! each write begins and becomes durable, and the harness that runs a test binary's own `child` test as another
//! process. One copy here, where `refresh-manager`'s and `refresh-postgres`'s process tests each had their own.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{CredentialId, LockKind, StoreError, StoredTokens, Swap, TokenStore, Versioned};

/// Nanoseconds since the Unix epoch: what [`Timed`] prints, comparable across processes.
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// A store that prints `write <ns>` on standard output when a compare-and-swap begins (the vendor's answer has
/// arrived), then waits `delay` (a slow write, long enough for a test to stop the process there), and prints
/// `durable <ns>` once the write returned written. Everything else is passed on to the store it wraps.
pub struct Timed<S> {
    store: S,
    delay: Duration,
}

impl<S> Timed<S> {
    /// `store`, timed, with no delay.
    pub fn new(store: S) -> Self {
        Timed {
            store,
            delay: Duration::ZERO,
        }
    }

    /// Waits `delay` between the `write` line and the write [default: none].
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

fn say(what: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what} {}", now_nanos())?;
    out.flush()
}

impl<S: TokenStore> TokenStore for Timed<S> {
    type Lock = S::Lock;

    async fn load(&self, id: &CredentialId) -> Result<Option<Versioned>, StoreError> {
        self.store.load(id).await
    }

    async fn compare_and_swap(
        &self,
        lock: &Self::Lock,
        expected: Option<u64>,
        tokens: &StoredTokens,
    ) -> Result<Swap, StoreError> {
        say("write")?;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let swap = self.store.compare_and_swap(lock, expected, tokens).await;
        if matches!(swap, Ok(Swap::Written { .. })) {
            say("durable")?;
        }
        swap
    }

    async fn keep_orphan(
        &self,
        lock: &Self::Lock,
        tokens: &StoredTokens,
    ) -> Result<(), StoreError> {
        self.store.keep_orphan(lock, tokens).await
    }

    async fn lock(&self, id: &CredentialId) -> Result<Self::Lock, StoreError> {
        self.store.lock(id).await
    }

    fn lock_kind(&self, lock: &Self::Lock) -> LockKind {
        self.store.lock_kind(lock)
    }

    async fn check_writable(&self, id: &CredentialId) -> Result<(), StoreError> {
        self.store.check_writable(id).await
    }

    async fn release(&self, lock: Self::Lock) {
        self.store.release(lock).await
    }
}

/// The variable that tells a test binary run as a child which role it plays.
pub const CHILD_ROLE: &str = "REFRESH_KIT_CHILD";
/// Set in a test's environment, the children's standard error reaches it (else it is discarded).
pub const CHILD_LOG: &str = "REFRESH_KIT_CHILD_LOG";

/// This test binary, run again as a child process playing `role`: only its test named `child` (ignored in a plain
/// run), with standard input and output piped to the parent and killed when dropped. Add the role's own settings
/// with `.env(…)` before spawning.
pub fn child_command(role: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(
        std::env::current_exe().expect("a test binary knows its own path"),
    );
    command
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os(CHILD_LOG).is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    command
}

/// In the `child` test: the role this process was started to play ([`child_command`]), or `None` when the test
/// runs as an ordinary (ignored) test. Ends the line the test harness began ("test child ... "), so that the
/// child's own lines stand alone.
pub fn child_role() -> Option<String> {
    let role = std::env::var(CHILD_ROLE).ok()?;
    println!();
    Some(role)
}
