//! The emulators against our own specs: every answer they give (successes and refusals, companion endpoints
//! included) comes with a status the spec lists, decodes into the generated type with nothing lost, and has
//! the shape (the set of member paths) of one of the spec's examples for that schema.
//!
//! The emulators are written from the vendors' documentation and the specs too, independently: agreement
//! here is evidence for both; a disagreement is a mistake in one of them. One file per emulator; `case.rs` is
//! the request builder and `conformance.rs` the checks every answer passes.

mod case;
mod conformance;

mod ekuaibao;
mod isolarcloud;
mod misa_cukcuk;
mod sugon_ac;
mod wechat_open;
