//! What each emulator received.

use axum::http::Method;

use crate::Emulator;

/// One request an emulator received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub emulator: Emulator,
    pub method: Method,
    pub path: String,
    /// The query string as sent (it may hold tokens: Ekuaibao sends them there).
    pub query: Option<String>,
}

/// A refresh an emulator handled, with the credential it was asked to refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refresh {
    pub emulator: Emulator,
    pub credential: String,
    /// When it was handled, on the real clock (tests in other processes compare it with theirs).
    pub at: std::time::SystemTime,
}
