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
//! sandbox.shutdown().await;
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

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
            .ok_or_else(|| format!("unknown vendor {name:?} (known: isolarcloud, sugon-ac, misa-cukcuk, wechat-open, ekuaibao)"))
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
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            emulators: Emulator::ALL.to_vec(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
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
}

/// Running emulators and their shared state.
pub struct Sandbox {
    shared: Arc<Shared>,
    servers: Vec<Server>,
}

struct Server {
    emulator: Emulator,
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sandbox {
    /// Starts the emulators, each on its own port.
    pub async fn start(options: SandboxOptions) -> std::io::Result<Sandbox> {
        let shared = Arc::new(Shared::default());
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
                axum::middleware::from_fn_with_state((shared.clone(), emulator), intercept),
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

    /// A fresh iSolarCloud authorization code, as the user's browser would bring back (single use).
    pub fn isolarcloud_authorization_code(&self) -> String {
        emulators::isolarcloud::new_authorization_code(&self.shared)
    }

    /// A fresh WeChat authorization code for [`accounts::WECHAT_AUTHORIZER_APPID`] (single use).
    pub fn wechat_authorization_code(&self) -> String {
        emulators::wechat_open::new_authorization_code(&self.shared)
    }

    /// MISA CukCuk's v2 login is not publicly documented: this stands in for it and returns
    /// `(access token, refresh token)` for `company_code`.
    pub fn misa_login(&self, company_code: &str) -> (String, String) {
        emulators::misa_cukcuk::login(&self.shared, company_code)
    }

    /// Tokens as if a first login had just happened at `emulator` (for tests: no request is made). Real first
    /// logins go through each vendor's companion endpoints, which the emulators serve too.
    pub fn login(&self, emulator: Emulator) -> Login {
        match emulator {
            Emulator::ISolarCloud => emulators::isolarcloud::login(&self.shared),
            Emulator::SugonAc => emulators::sugon_ac::login(&self.shared),
            Emulator::MisaCukcuk => {
                let (access_token, refresh_token) = self.misa_login(accounts::MISA_COMPANY_CODE);
                Login {
                    access_token,
                    refresh_token,
                    component_access_token: None,
                }
            }
            Emulator::WechatOpen => emulators::wechat_open::login(&self.shared),
            Emulator::Ekuaibao => emulators::ekuaibao::login(&self.shared),
        }
    }

    /// Stops every emulator and waits for them.
    pub async fn shutdown(self) {
        for server in self.servers {
            let _ = server.stop.send(());
            let _ = server.task.await;
        }
    }
}

/// The tokens of a first login (see [`Sandbox::login`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    pub access_token: String,
    /// The refresh token; for Sugon AC the token itself.
    pub refresh_token: String,
    /// WeChat: the platform's component access token the refresh needs.
    pub component_access_token: Option<String>,
}

/// State every emulator of a sandbox shares.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) clock: Clock,
    faults: Mutex<HashMap<Emulator, VecDeque<Fault>>>,
    requests: Mutex<Vec<LoggedRequest>>,
    refreshes: Mutex<Vec<log::Refresh>>,
    pub(crate) vendors: Mutex<emulators::State>,
}

impl Shared {
    /// Counts a refresh of `credential` (see [`Sandbox::refresh_count`]).
    pub(crate) fn record_refresh(&self, emulator: Emulator, credential: &str) {
        lock(&self.refreshes).push(log::Refresh {
            emulator,
            credential: credential.to_owned(),
        });
    }

    pub(crate) fn vendors(&self) -> MutexGuard<'_, emulators::State> {
        lock(&self.vendors)
    }
}

/// A poisoned lock means a handler panicked mid-update; the emulator state is still the best there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Logs every request, then applies the emulator's next injected fault, if any.
async fn intercept(
    State((shared, emulator)): State<(Arc<Shared>, Emulator)>,
    request: Request,
    next: Next,
) -> Response {
    lock(&shared.requests).push(LoggedRequest {
        emulator,
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
    });
    let fault = lock(&shared.faults)
        .get_mut(&emulator)
        .and_then(VecDeque::pop_front);
    match fault {
        None => next.run(request).await,
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = status.into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Some(Fault::Malformed { content_type, body }) => {
            ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Some(Fault::DropAfterCommit) => {
            let _committed = next.run(request).await;
            dropped_connection()
        }
    }
}

/// A response whose body fails at once: the server closes the connection mid-answer.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "dropped by the sandbox",
        ))
    });
    let mut response = Response::new(axum::body::Body::from_stream(failing));
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_LENGTH, 64.into());
    response
}
