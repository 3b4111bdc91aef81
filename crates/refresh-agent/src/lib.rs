//! The engine of `refresh agent`: every process on a host, in any language, gets valid tokens without writing a
//! refresh loop of its own.
//!
//! - [`Agent`] keeps each [`Profile`]'s credential valid through one [`refresh_manager::Manager`] (renewals are
//!   durable before anything is handed out), and rewrites the profile's [`Sink`] files before each token expires.
//! - [`api::serve`] answers on a unix socket: tokens to the callers a profile's [`Readers`] allow (the kernel says
//!   who the caller is), status, health and Prometheus metrics.
//!
//! The command line (`refresh agent`) reads the profiles file, builds the profiles and handles signals: SIGHUP
//! calls [`Agent::apply`] with the re-read profiles, SIGTERM [`Agent::shutdown`].

pub mod access;
pub mod agent;
pub mod api;
pub mod notify;
pub mod sink;

pub use access::{Peer, Readers};
pub use agent::{Agent, Applied, Health, Profile, State};
pub use notify::{Notifier, Webhook};
pub use sink::{Format, Sink};
