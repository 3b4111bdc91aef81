//! The compiled runtime of refresh-kit's generated vendor clients.
//!
//! `cargo xtask codegen` turns each vendor's OpenAPI spec into a client crate. What those crates share is written
//! here once, compiled, linted and tested, instead of being templated into each generated file:
//!
//! - [`Secret`]: every token and credential in a request or an answer (`format: password` in a spec);
//! - [`hooks`]: what every generated `ClientHooks` impl does (wire fidelity, bounded answers);
//! - [`Operation`] and [`ErrorCode`]: the shapes of the tables generated from each spec, so that an operation
//!   or a vendor error code is named by a constant, never by a string.
//!
//! This crate depends on nothing that `reqwest` (with its default rustls backend) and `progenitor-client` do not
//! already pull in.

mod bounded;
mod error_code;
pub mod hooks;
mod operation;
mod secret;

pub use bounded::{MAX_RESPONSE_BODY_BYTES, read_bounded};
pub use error_code::{CodeField, ErrorCode};
pub use operation::{DocumentedStatus, Operation, TokenField, TokenRole};
pub use secret::Secret;
