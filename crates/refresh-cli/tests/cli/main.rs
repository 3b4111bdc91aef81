//! The `refresh` binary end to end against the sandbox (in this test process): every vendor, rotation, the
//! refresh windows, every injected fault, every exit code, and profiles over files and PostgreSQL. One test
//! binary, its concerns in modules.

mod commands;
mod once;
mod profiles;
mod support;

#[path = "../../../refresh-postgres/tests/support/mod.rs"]
mod pg;
