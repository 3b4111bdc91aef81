//! Walking the schemas of an operation's answers, with the JSON path of every schema node: how xtask finds the
//! fields that carry extensions (`x-error-codes`, `x-token-role`) and where they sit in an answer.

use serde_yaml::Value;

/// Calls `visit(path, schema)` for every schema node reachable from the responses of `operation`: through
/// `$ref`s (each followed once per branch), `allOf`/`oneOf`/`anyOf` (same path), `properties` (`a.b`) and
/// `items` (`a[]`).
pub fn walk<'a>(spec: &'a Value, operation: &'a Value, visit: &mut impl FnMut(&str, &'a Value)) {
    let responses = operation.get("responses").and_then(Value::as_mapping);
    for (_, response) in responses.into_iter().flatten() {
        let response = resolve(spec, response, "responses");
        let content = response
            .and_then(|r| r.get("content"))
            .and_then(Value::as_mapping);
        for (_, media) in content.into_iter().flatten() {
            if let Some(schema) = media.get("schema") {
                walk_schema(spec, schema, "", &mut Vec::new(), visit);
            }
        }
    }
}

/// Every operation of the spec, in document order.
pub fn operations(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("paths")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| item.as_mapping().into_iter().flatten())
        .map(|(_, operation)| operation)
        .filter(|operation| operation.get("responses").is_some())
}

pub fn walk_schema<'a>(
    spec: &'a Value,
    schema: &'a Value,
    path: &str,
    visiting: &mut Vec<&'a str>,
    visit: &mut impl FnMut(&str, &'a Value),
) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        if visiting.contains(&reference) {
            return;
        }
        visiting.push(reference);
        if let Some(resolved) = resolve(spec, schema, "schemas") {
            walk_schema(spec, resolved, path, visiting, visit);
        }
        visiting.pop();
        return;
    }
    visit(path, schema);
    for combinator in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(combinator)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            walk_schema(spec, part, path, visiting, visit);
        }
    }
    if let Some(items) = schema.get("items") {
        walk_schema(spec, items, &format!("{path}[]"), visiting, visit);
    }
    let properties = schema.get("properties").and_then(Value::as_mapping);
    for (name, property) in properties.into_iter().flatten() {
        let name = name.as_str().unwrap_or("?");
        let child = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        walk_schema(spec, property, &child, visiting, visit);
    }
}

/// `value`, or what its `$ref` names in `components.<section>`.
pub fn resolve<'a>(spec: &'a Value, value: &'a Value, section: &str) -> Option<&'a Value> {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return Some(value);
    };
    let name = reference.strip_prefix(&format!("#/components/{section}/"))?;
    spec.get("components")?.get(section)?.get(name)
}

/// The locations of every `extension` in the document that is not among `reached` (by address).
pub fn unreached(value: &Value, extension: &str, reached: &[*const Value]) -> Vec<String> {
    let mut out = Vec::new();
    find_unreached(value, "", extension, reached, &mut out);
    out
}

fn find_unreached(
    value: &Value,
    at: &str,
    extension: &str,
    reached: &[*const Value],
    out: &mut Vec<String>,
) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key.as_str().unwrap_or("?");
                if key == extension && !reached.contains(&(child as *const Value)) {
                    out.push(at.to_owned());
                }
                let at = if at.is_empty() {
                    key.to_owned()
                } else {
                    format!("{at}.{key}")
                };
                find_unreached(child, &at, extension, reached, out);
            }
        }
        Value::Sequence(items) => {
            for (index, child) in items.iter().enumerate() {
                find_unreached(child, &format!("{at}[{index}]"), extension, reached, out);
            }
        }
        _ => {}
    }
}
