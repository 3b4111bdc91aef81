//! XML samples (MISA's .NET DataContract format) read into JSON, so that they can be compared with the JSON
//! samples of the same page.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde_json::{Map, Value};

/// The document's root element as `{ "Root": … }`: an element with children becomes an object (a child name that
/// repeats becomes an array), an element with only text becomes a string. Namespaces and attributes are
/// dropped: DataContract uses them for typing, not for data.
pub fn to_json(xml: &str) -> Result<Value, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    // (element name, children, text) for every open element.
    let mut stack: Vec<(String, Map<String, Value>, String)> =
        vec![(String::new(), Map::new(), String::new())];
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?
        {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push((name, Map::new(), String::new()));
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.local_name().as_ref()).into_owned();
                let parent = &mut stack.last_mut().expect("the document frame").1;
                insert(parent, name, Value::String(String::new()));
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| e.to_string())?;
                stack.last_mut().expect("an open element").2.push_str(&text);
            }
            Event::End(_) => {
                let (name, children, text) = stack.pop().expect("an open element");
                let value = if children.is_empty() {
                    Value::String(text)
                } else {
                    Value::Object(children)
                };
                let parent = &mut stack.last_mut().ok_or("unbalanced end tag")?.1;
                insert(parent, name, value);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match stack.pop() {
        Some((_, document, _)) if stack.is_empty() => Ok(Value::Object(document)),
        _ => Err("unclosed element".to_owned()),
    }
}

fn insert(parent: &mut Map<String, Value>, name: String, value: Value) {
    match parent.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            parent.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_children_become_an_array_and_namespaces_go() {
        let xml = r#"<R xmlns="urn:x"><A>1</A><L><I><N>a</N></I><I><N>b</N></I></L><E/></R>"#;
        assert_eq!(
            to_json(xml).unwrap(),
            json!({"R": {"A": "1", "L": {"I": [{"N": "a"}, {"N": "b"}]}, "E": ""}})
        );
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(to_json("<R><A>1</R>").is_err());
    }
}
