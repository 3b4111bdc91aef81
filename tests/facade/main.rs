//! The facade end to end against local hosts: every documentation sample normalized (snapshots in
//! `snapshots/`, next to the wire snapshots), every documented vendor code mapped, a corpus of malformed answers,
//! and what the facade puts on the wire.

mod codes;
mod drift;
mod e2e;
mod lifecycle;
mod malformed;
mod samples;
mod setup;
