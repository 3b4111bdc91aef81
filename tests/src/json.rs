//! The fixture round trip (after async-stripe): decode a sample, encode it again, and nothing may be missing or
//! changed.

use serde_json::Value;

/// Asserts that `reencoded` carries exactly the sample's data.
///
/// `null` and an absent member are the same on these wires (the generated types skip `None` when encoding), so
/// both sides drop null members before comparing; every other difference — a member dropped because the schema
/// lacks it, a number turned into a string, a changed value — fails, with both documents in the message.
pub fn assert_round_trip(context: &str, sample: &Value, reencoded: &Value) {
    let (sample, reencoded) = (without_nulls(sample), without_nulls(reencoded));
    assert!(
        sample == reencoded,
        "{context}: decoding and re-encoding changed the sample\n  sample:     {sample}\n  re-encoded: {reencoded}"
    );
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_and_absent_are_the_same() {
        assert_round_trip(
            "t",
            &json!({"a": 1, "b": null, "c": [{"d": null}]}),
            &json!({"a": 1, "c": [{}]}),
        );
    }

    #[test]
    #[should_panic(expected = "changed the sample")]
    fn a_dropped_member_fails() {
        assert_round_trip("t", &json!({"a": 1, "unknown": "x"}), &json!({"a": 1}));
    }

    #[test]
    #[should_panic(expected = "changed the sample")]
    fn a_number_turned_string_fails() {
        assert_round_trip(
            "t",
            &json!({"expires_in": 172799}),
            &json!({"expires_in": "172799"}),
        );
    }
}
