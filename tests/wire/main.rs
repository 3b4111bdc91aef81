//! Wire tests: for every operation of every spec, the request the generated client sends and what it decodes
//! from every documented response, snapshotted and compared with the vendor's documentation samples.
//!
//! Snapshots are in `snapshots/`, named `<vendor>__<operation>__<request|response>__…`; review changes with
//! `cargo insta review`.

mod bounded_body;
mod ekuaibao;
mod isolarcloud;
mod misa_cukcuk;
mod sugon_ac;
mod wechat_open;

/// Every operation of a spec has wire tests: a new operation without them fails here.
fn assert_covers_every_operation(spec: &refresh_wire_tests::Spec, tested: &[&str]) {
    let mut in_spec = spec.operation_ids();
    in_spec.sort();
    let mut tested: Vec<String> = tested.iter().map(|s| s.to_string()).collect();
    tested.sort();
    assert_eq!(
        in_spec, tested,
        "{}: operations in the spec vs. operations with wire tests",
        spec.vendor
    );
}
