//! Local, stateful emulators of the five vendors' token endpoints, so that refreshes can be tested offline.
//!
//! Each emulator speaks its vendor's documented wire format (paths, methods, parameter places, envelopes,
//! error codes, HTTP statuses) and is strict like the real service: tokens expire on the sandbox's [`Clock`],
//! rotated refresh tokens are refused after one use with the vendor's own code, Sugon AC renews only up to
//! 24 hours after expiry, Ekuaibao refreshes only before expiry. Tests control time ([`Clock::advance`]),
//! inject [`Fault`]s, and read what each emulator received.
//!
//! The answers are written from the vendors' documentation, not from refresh-kit's generated types: an emulator
//! built from our own types would share our specs' mistakes.
//!
//! ```no_run
//! use refresh_sandbox::{Emulator, Sandbox, SandboxOptions};
//!
//! # async fn example() -> std::io::Result<()> {
//! let sandbox = Sandbox::start(SandboxOptions::default()).await?;
//! let base_url = sandbox.base_url(Emulator::SugonAc).expect("started");
//! // … point a client at base_url; log in with the credentials in `refresh_sandbox::accounts` …
//! sandbox.clock().advance(std::time::Duration::from_secs(3 * 3600));
//! // Dropping the sandbox stops its emulators.
//! # Ok(())
//! # }
//! ```

pub mod accounts;
mod clock;
mod emulators;
mod fault;
mod log;
mod tokens;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use fault::Fault;
pub use log::LoggedRequest;

/// One vendor's emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Emulator {
    ISolarCloud,
    SugonAc,
    MisaCukcuk,
    WechatOpen,
    Ekuaibao,
}

impl Emulator {
    pub const ALL: [Emulator; 5] = [
        Emulator::ISolarCloud,
        Emulator::SugonAc,
        Emulator::MisaCukcuk,
        Emulator::WechatOpen,
        Emulator::Ekuaibao,
    ];

    /// The vendor's short name (`sugon-ac`), as refresh-kit names vendors everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Emulator::ISolarCloud => "isolarcloud",
            Emulator::SugonAc => "sugon-ac",
            Emulator::MisaCukcuk => "misa-cukcuk",
            Emulator::WechatOpen => "wechat-open",
            Emulator::Ekuaibao => "ekuaibao",
        }
    }
}

impl fmt::Display for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Emulator {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Emulator::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Emulator::ALL.into_iter().map(Emulator::as_str).collect();
                format!("unknown vendor {name:?} (known: {})", known.join(", "))
            })
    }
}

/// Which emulators to start, and where.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SandboxOptions {
    pub emulators: Vec<Emulator>,
    /// The address to listen on: loopback by default. The emulators are for local tests only.
    pub host: IpAddr,
    /// The first emulator's port; the others take the following ones. `0` (the default): free ports.
    pub port: u16,
    /// Reuse detection, as OAuth 2.1 servers do it: a spent refresh token presented again revokes its whole
    /// family (the chain of rotations it belongs to), at every emulator. Off by default, as the vendors document none.
    pub reuse_detection: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            emulators: Emulator::ALL.to_vec(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            reuse_detection: false,
        }
    }
}

impl SandboxOptions {
    pub fn only(emulator: Emulator) -> Self {
        SandboxOptions {
            emulators: vec![emulator],
            ..Self::default()
        }
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// See [`SandboxOptions::reuse_detection`].
    pub fn with_reuse_detection(mut self) -> Self {
        self.reuse_detection = true;
        self
    }
}

/// Running emulators and their shared state. Dropping it stops the emulators (in-flight answers finish);
/// [`Sandbox::shutdown`] also waits until they have stopped.
pub struct Sandbox {
    shared: Arc<Shared>,
    servers: Vec<Server>,
}

struct Server {
    emulator: Emulator,
    address: SocketAddr,
    /// Sending on it, or dropping it (as dropping the `Sandbox` does), stops the server gracefully.
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sandbox {
    /// Starts the emulators, each on its own port.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared {
            reuse_detection: options.reuse_detection,
            ..Shared::default()
        });
        let mut servers = Vec::new();
        for (index, emulator) in options.emulators.iter().copied().enumerate() {
            let port = if options.port == 0 {
                0
            } else {
                options.port.saturating_add(index as u16)
            };
            let listener = TcpListener::bind((options.host, port)).await?;
            let address = listener.local_addr()?;
            let app = emulators::router(emulator, shared.clone()).layer(
                axum::middleware::from_fn_with_state((shared.clone(), emulator), fault::intercept),
            );
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            });
            servers.push(Server {
                emulator,
                address,
                stop,
                task,
            });
        }
        Ok(Sandbox { shared, servers })
    }

    /// The base URL of an emulator (`http://127.0.0.1:PORT`), if it was started.
    pub fn base_url(&self, emulator: Emulator) -> Option<String> {
        self.servers
            .iter()
            .find(|s| s.emulator == emulator)
            .map(|s| format!("http://{}", s.address))
    }

    /// The started emulators and their base URLs.
    pub fn base_urls(&self) -> Vec<(Emulator, String)> {
        self.servers
            .iter()
            .map(|s| (s.emulator, format!("http://{}", s.address)))
            .collect()
    }

    /// The emulators' clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Makes the emulator's next request meet `fault` (faults queue up, one per request).
    pub fn inject(&self, emulator: Emulator, fault: Fault) {
        lock(&self.shared.faults)
            .entry(emulator)
            .or_default()
            .push_back(fault);
    }

    /// How many injected faults still wait for a request at the emulator.
    pub fn pending_faults(&self, emulator: Emulator) -> usize {
        lock(&self.shared.faults)
            .get(&emulator)
            .map_or(0, VecDeque::len)
    }

    /// Drops the faults still queued for the emulator.
    pub fn clear_faults(&self, emulator: Emulator) {
        lock(&self.shared.faults).remove(&emulator);
    }

    /// From `from` until `until` on the sandbox's clock, the emulator answers every request with HTTP `status` and
    /// no body, as a vendor whose token endpoint is down: tests move the clock through it instead of waiting.
    pub fn outage(
        &self,
        emulator: Emulator,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        status: u16,
    ) {
        lock(&self.shared.outages).push(fault::Outage {
            emulator,
            from,
            until,
            status,
        });
    }

    /// Every request to `emulator` from now on waits `latency` (real time) before it is handled, as a distant
    /// vendor's would; `Duration::ZERO` removes it.
    pub fn set_latency(&self, emulator: Emulator, latency: std::time::Duration) {
        lock(&self.shared.latency).insert(emulator, latency);
    }

    /// The most requests `emulator` was handling at one time.
    pub fn most_in_flight(&self, emulator: Emulator) -> usize {
        lock(&self.shared.in_flight)
            .get(&emulator)
            .map_or(0, |(_, most)| *most)
    }

    /// Every request the emulator received, in order.
    pub fn requests(&self, emulator: Emulator) -> Vec<LoggedRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.emulator == emulator)
            .cloned()
            .collect()
    }

    /// How many refreshes the emulator handled for this credential (the refresh token, or Sugon's token),
    /// successful or not.
    pub fn refresh_count(&self, emulator: Emulator, credential: &str) -> usize {
        lock(&self.shared.refreshes)
            .iter()
            .filter(|r| r.emulator == emulator && r.credential == credential)
            .count()
    }

    /// When the emulator handled each refresh, in order, on the real clock (not the sandbox's): for tests that
    /// compare it with what another process saw.
    pub fn refresh_times(&self, emulator: Emulator) -> Vec<std::time::SystemTime> {
        lock(&self.shared.refreshes)
            .iter()
            .filter(|r| r.emulator == emulator)
            .map(|r| r.at)
            .collect()
    }

    /// Whether `refresh_token` (Sugon AC: the token itself) would be accepted by a refresh at `emulator` now.
    pub fn refresh_token_state(
        &self,
        emulator: Emulator,
        refresh_token: &str,
    ) -> RefreshTokenState {
        let now = self.shared.clock.now();
        let ledgers = self.shared.ledgers();
        match ledgers.refresh_tokens(emulator).check(refresh_token, now) {
            Ok(_) => RefreshTokenState::Live,
            Err(tokens::Refusal::Spent) => RefreshTokenState::Spent,
            Err(tokens::Refusal::Expired) => RefreshTokenState::Expired,
            Err(tokens::Refusal::Unknown) => RefreshTokenState::Unknown,
            Err(tokens::Refusal::Revoked) => RefreshTokenState::Revoked,
        }
    }

    /// What `emulator` makes of an access token (Sugon AC: its token; WeChat: an authorizer's or the platform's
    /// component token) now: a token spent by a rotation still counts as live until it expires, as the vendors
    /// document nothing else for their APIs.
    pub fn access_token_state(&self, emulator: Emulator, access_token: &str) -> AccessTokenState {
        let now = self.shared.clock.now();
        let ledgers = self.shared.ledgers();
        let issued = ledgers
            .access_tokens(emulator)
            .into_iter()
            .find_map(|tokens| tokens.get(access_token).cloned());
        match issued {
            None => AccessTokenState::Unknown,
            Some(issued) if issued.expires_at.is_some_and(|at| now > at) => {
                AccessTokenState::Expired
            }
            Some(_) => AccessTokenState::Live,
        }
    }

    /// Every refresh the emulator handled, in order: the refresh token presented (Sugon AC: the token).
    pub fn presented_refresh_tokens(&self, emulator: Emulator) -> Vec<String> {
        lock(&self.shared.refreshes)
            .iter()
            .filter(|r| r.emulator == emulator)
            .map(|r| r.credential.clone())
            .collect()
    }

    /// The refresh token (Sugon AC: the token) `emulator` issued last.
    pub fn last_refresh_token(&self, emulator: Emulator) -> Option<String> {
        self.shared
            .ledgers()
            .refresh_tokens(emulator)
            .last()
            .map(str::to_owned)
    }

    /// A fresh authorization code, as the user's browser would bring back after authorizing the app (single use):
    /// iSolarCloud's, and WeChat's for [`accounts::WECHAT_AUTHORIZER_APPID`]. `None` for vendors whose first login
    /// takes no authorization code.
    pub fn authorization_code(&self, emulator: Emulator) -> Option<String> {
        match emulator {
            Emulator::ISolarCloud => {
                Some(emulators::isolarcloud::new_authorization_code(&self.shared))
            }
            Emulator::WechatOpen => {
                Some(emulators::wechat_open::new_authorization_code(&self.shared))
            }
            Emulator::SugonAc | Emulator::MisaCukcuk | Emulator::Ekuaibao => None,
        }
    }

    /// Tokens as if a first login had just happened at `emulator` with the accounts of [`accounts`] (for tests: no
    /// request is made). Real first logins go through each vendor's companion endpoints, which the emulators serve
    /// too. MISA CukCuk's v2 login is undocumented (its OpenPlatform login issues no refresh token), so this is
    /// the only way to first tokens its v2 refresh takes.
    pub fn login(&self, emulator: Emulator) -> Login {
        match emulator {
            Emulator::ISolarCloud => emulators::isolarcloud::login(&self.shared),
            Emulator::SugonAc => emulators::sugon_ac::login(&self.shared),
            Emulator::MisaCukcuk => {
                emulators::misa_cukcuk::login(&self.shared, accounts::MISA_COMPANY_CODE)
            }
            Emulator::WechatOpen => emulators::wechat_open::login(&self.shared),
            Emulator::Ekuaibao => emulators::ekuaibao::login(&self.shared),
        }
    }

    /// Stops every emulator and waits until they have stopped.
    pub async fn shutdown(self) {
        for server in self.servers {
            let _ = server.stop.send(());
            let _ = server.task.await;
        }
    }
}

/// What an emulator makes of a refresh token (see [`Sandbox::refresh_token_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshTokenState {
    /// Issued, not used up, not expired: a refresh with it would succeed.
    Live,
    /// Used up by a rotation.
    Spent,
    Expired,
    /// Never issued here.
    Unknown,
    /// Its family was revoked by reuse detection ([`SandboxOptions::with_reuse_detection`]).
    Revoked,
}

/// What an emulator makes of an access token (see [`Sandbox::access_token_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessTokenState {
    Live,
    Expired,
    /// Never issued here.
    Unknown,
}

/// The tokens of a first login (see [`Sandbox::login`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    pub access_token: String,
    /// The refresh token; for Sugon AC the token itself.
    pub refresh_token: String,
    /// Other credentials the vendor issued that a refresh needs, by their wire names (WeChat:
    /// `component_access_token`, the platform's own token).
    pub credentials: Vec<(&'static str, String)>,
}

impl Login {
    pub(crate) fn new(access_token: String, refresh_token: String) -> Self {
        Login {
            access_token,
            refresh_token,
            credentials: Vec::new(),
        }
    }

    pub(crate) fn with_credential(mut self, name: &'static str, value: String) -> Self {
        self.credentials.push((name, value));
        self
    }

    /// The credential the vendor calls `name` on the wire, if the login issued one.
    pub fn credential(&self, name: &str) -> Option<&str> {
        self.credentials
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.as_str())
    }
}

/// State every emulator of a sandbox shares.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    faults: Mutex<HashMap<Emulator, VecDeque<Fault>>>,
    outages: Mutex<Vec<fault::Outage>>,
    latency: Mutex<HashMap<Emulator, std::time::Duration>>,
    /// Requests being handled now, and the most there ever were at once, per emulator.
    in_flight: Mutex<HashMap<Emulator, (usize, usize)>>,
    requests: Mutex<Vec<LoggedRequest>>,
    refreshes: Mutex<Vec<log::Refresh>>,
    ledgers: Mutex<emulators::Ledgers>,
    reuse_detection: bool,
}

impl Shared {
    /// Appends `request` to the request log.
    pub(crate) fn log(&self, request: LoggedRequest) {
        lock(&self.requests).push(request);
    }

    /// The emulator's next injected fault: an outage under way on the sandbox's clock, else the next queued one,
    /// taken off its queue.
    pub(crate) fn next_fault(&self, emulator: Emulator) -> Option<Fault> {
        let now = self.clock.now();
        let outage = lock(&self.outages)
            .iter()
            .find(|outage| outage.emulator == emulator && outage.covers(now))
            .map(|outage| Fault::server_error(outage.status));
        outage.or_else(|| {
            lock(&self.faults)
                .get_mut(&emulator)
                .and_then(VecDeque::pop_front)
        })
    }

    /// Counts a request to `emulator` in flight until the returned guard drops.
    pub(crate) fn in_flight(self: &Arc<Self>, emulator: Emulator) -> InFlight {
        let mut counts = lock(&self.in_flight);
        let (now, most) = counts.entry(emulator).or_default();
        *now += 1;
        *most = (*most).max(*now);
        InFlight {
            shared: Arc::clone(self),
            emulator,
        }
    }

    /// The latency every request to `emulator` waits (see [`Sandbox::set_latency`]).
    pub(crate) fn latency(&self, emulator: Emulator) -> std::time::Duration {
        lock(&self.latency)
            .get(&emulator)
            .copied()
            .unwrap_or_default()
    }

    /// Counts a refresh of `credential` (see [`Sandbox::refresh_count`]).
    pub(crate) fn record_refresh(&self, emulator: Emulator, credential: &str) {
        lock(&self.refreshes).push(log::Refresh {
            emulator,
            credential: credential.to_owned(),
            at: std::time::SystemTime::now(),
        });
        if self.reuse_detection
            && self
                .ledgers()
                .refresh_tokens_mut(emulator)
                .revoke_family_if_spent(credential)
        {
            tracing::warn!(%emulator, "a spent refresh token was presented again: its family is revoked");
        }
    }

    /// What the emulators issued, locked for one handler's read-check-write.
    pub(crate) fn ledgers(&self) -> MutexGuard<'_, emulators::Ledgers> {
        lock(&self.ledgers)
    }
}

/// A request being handled (see [`Shared::in_flight`]).
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    emulator: Emulator,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((now, _)) = lock(&self.shared.in_flight).get_mut(&self.emulator) {
            *now -= 1;
        }
    }
}

/// A poisoned lock means a handler panicked mid-update; the emulator state is still the best there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Emulator;

    #[test]
    fn an_emulator_is_found_by_its_name_and_an_unknown_name_lists_the_known_ones() {
        for emulator in Emulator::ALL {
            assert_eq!(emulator.as_str().parse::<Emulator>(), Ok(emulator));
        }
        let unknown = "nobody".parse::<Emulator>().unwrap_err();
        assert!(unknown.contains("\"nobody\""), "{unknown}");
        for emulator in Emulator::ALL {
            assert!(unknown.contains(emulator.as_str()), "{unknown}");
        }
    }
}
