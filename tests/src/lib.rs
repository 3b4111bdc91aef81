//! Support for the workspace-level wire tests in `wire/`.
//!
//! The tests take every documentation sample from the specs themselves (`examples`, `x-documented-request`,
//! `x-xml-example`), so each sample is written once, in `specs/`, verbatim from the vendor's page. A test then
//! checks that the generated client turns the sample into exactly the documented wire (requests) or decodes it
//! without losing anything (responses).

pub mod capture;
pub mod check;
pub mod documented;
pub mod json;
pub mod raw;
pub mod spec;
pub mod xml;

pub use capture::{CapturedRequest, capture_request, decode_response};
pub use check::{assert_documented_request, assert_request, check_response_examples};
pub use documented::DocumentedRequest;
pub use json::assert_round_trip;
pub use raw::{RawAnswer, serve_raw};
pub use spec::{Example, Spec};

/// insta settings for every wire snapshot: sorted keys, so that a snapshot diff shows a wire change and nothing
/// else; the sample's source as the snapshot's description; all snapshots in `tests/wire/snapshots`, named
/// `<vendor>__<operation>__<request|response>__…`.
pub fn snapshot_settings(description: impl Into<String>) -> insta::Settings {
    snapshot_settings_in(
        concat!(env!("CARGO_MANIFEST_DIR"), "/wire/snapshots"),
        description,
    )
}

/// [`snapshot_settings`] with another snapshot directory.
pub fn snapshot_settings_in(directory: &str, description: impl Into<String>) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_sort_maps(true);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path(directory);
    settings.set_description(description);
    settings.set_omit_expression(true);
    settings
}
