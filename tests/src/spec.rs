//! Reading a spec and its documentation samples, in document order.

use refresh_runtime::Operation;
use serde_json::Value as Json;
use serde_yaml::Value;

/// One spec from `specs/`. Navigated as YAML, whose mappings keep the document's order (so "the first
/// example" is the first one written); values are handed out as JSON.
pub struct Spec {
    pub vendor: &'static str,
    document: Value,
}

/// A named example of the spec, with its summary (which says where the sample comes from).
#[derive(Clone, Debug)]
pub struct Example {
    pub name: String,
    pub summary: String,
    pub value: Json,
}

impl Spec {
    pub fn load(vendor: &'static str) -> Spec {
        let path = format!("{}/../specs/{vendor}.yaml", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let document = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        Spec { vendor, document }
    }

    /// Every operationId of the spec, in document order.
    pub fn operation_ids(&self) -> Vec<String> {
        self.operations()
            .map(|(_, _, op)| text(&op["operationId"]))
            .collect()
    }

    /// The URL of the spec's first server (the vendor's default host).
    pub fn first_server(&self) -> String {
        text(&self.document["servers"][0]["url"])
    }

    /// The HTTP method (upper case) and path of an operation.
    pub fn route(&self, operation: &Operation) -> (String, String) {
        let (path, method, _) = self.find(operation.id);
        (method.to_uppercase(), path.to_owned())
    }

    /// An operation's extension (`x-…`), if present.
    pub fn extension(&self, operation: &Operation, name: &str) -> Option<Json> {
        self.find(operation.id).2.get(name).map(to_json)
    }

    /// The request-body examples of an operation.
    pub fn request_examples(&self, operation: &Operation) -> Vec<Example> {
        let body = self.resolve(&self.find(operation.id).2["requestBody"]);
        self.media_examples(body)
    }

    /// The request body's XML sample (`x-xml-example`), if any.
    pub fn request_xml_example(&self, operation: &Operation) -> Option<&str> {
        self.resolve(&self.find(operation.id).2["requestBody"])
            .get("x-xml-example")?
            .as_str()
    }

    /// The response examples of an operation, with their HTTP status, in document order.
    pub fn response_examples(&self, operation: &Operation) -> Vec<(u16, Example)> {
        let responses = self.find(operation.id).2["responses"]
            .as_mapping()
            .expect("responses");
        let mut all = Vec::new();
        for (status, response) in responses {
            let code = status.as_str().and_then(|s| s.parse::<u16>().ok());
            let code = code.unwrap_or_else(|| panic!("{}: status {status:?}", self.vendor));
            for example in self.media_examples(self.resolve(response)) {
                all.push((code, example));
            }
        }
        all
    }

    /// The operation's first HTTP 200 example: what a local host answers while a test captures a request.
    pub fn success_answer(&self, operation: &Operation) -> Json {
        let (_, example) = self
            .response_examples(operation)
            .into_iter()
            .find(|(status, _)| *status == 200)
            .unwrap_or_else(|| panic!("{}: {} has no HTTP 200 example", self.vendor, operation.id));
        example.value
    }

    /// The HTTP statuses the operation's spec lists.
    pub fn statuses(&self, operation: &Operation) -> Vec<u16> {
        let responses = self.find(operation.id).2["responses"]
            .as_mapping()
            .expect("responses");
        responses
            .keys()
            .filter_map(|status| status.as_str()?.parse().ok())
            .collect()
    }

    /// The `$ref` of the schema an operation answers with at `status`, if it has a body.
    pub fn response_schema(&self, operation: &Operation, status: u16) -> Option<String> {
        let response =
            self.resolve(&self.find(operation.id).2["responses"][status.to_string().as_str()]);
        let media_type = response["content"].as_mapping()?.values().next()?;
        media_type["schema"]["$ref"].as_str().map(str::to_owned)
    }

    /// Every response example, of any of `operations` (the generated `operations::ALL`) and any status, whose
    /// schema is `schema_ref`.
    pub fn examples_of_schema(&self, operations: &[Operation], schema_ref: &str) -> Vec<Example> {
        let mut all = Vec::new();
        for operation in operations {
            for (status, example) in self.response_examples(operation) {
                if self.response_schema(operation, status).as_deref() == Some(schema_ref) {
                    all.push(example);
                }
            }
        }
        all
    }

    /// A response's XML sample (`x-xml-example`), if any.
    pub fn response_xml_example(&self, operation: &Operation, status: u16) -> Option<&str> {
        let response = &self.find(operation.id).2["responses"][status.to_string().as_str()];
        self.resolve(response).get("x-xml-example")?.as_str()
    }

    /// The example value of an operation's parameter (by its wire name), e.g. a header documented by a curl.
    pub fn parameter_example(&self, operation: &Operation, name: &str) -> String {
        let parameters = self.find(operation.id).2["parameters"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        let parameter = parameters
            .iter()
            .map(|p| self.resolve(p))
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{}: {} has no parameter {name}", self.vendor, operation.id));
        parameter["example"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no string example"))
            .to_owned()
    }

    fn media_examples(&self, holder: &Value) -> Vec<Example> {
        let mut all = Vec::new();
        for media_type in holder["content"]
            .as_mapping()
            .into_iter()
            .flat_map(|c| c.values())
        {
            for (name, example) in media_type["examples"].as_mapping().into_iter().flatten() {
                let example = self.resolve(example);
                all.push(Example {
                    name: text(name),
                    summary: example["summary"].as_str().unwrap_or_default().to_owned(),
                    value: to_json(&example["value"]),
                });
            }
        }
        all
    }

    fn operations(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        let paths = self.document["paths"].as_mapping().expect("paths");
        paths.iter().flat_map(|(path, item)| {
            let operations = item.as_mapping().expect("a path item").iter();
            operations
                .filter(|(_, op)| op.get("operationId").is_some())
                .map(move |(method, op)| {
                    (
                        path.as_str().expect("a path"),
                        method.as_str().expect("a method"),
                        op,
                    )
                })
        })
    }

    fn find(&self, operation_id: &str) -> (&str, &str, &Value) {
        self.operations()
            .find(|(_, _, op)| op["operationId"].as_str() == Some(operation_id))
            .unwrap_or_else(|| panic!("{}: no operation {operation_id}", self.vendor))
    }

    /// Follows a local `$ref`.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let path = reference.strip_prefix("#/").expect("a local $ref");
            node = path
                .split('/')
                .fold(&self.document, |node, part| &node[part]);
            assert!(!node.is_null(), "dangling {reference}");
        }
        node
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, found {value:?}"))
        .to_owned()
}

fn to_json(value: &Value) -> Json {
    serde_json::to_value(value).expect("YAML examples are JSON values")
}
