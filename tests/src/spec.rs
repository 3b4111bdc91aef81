//! Reading a spec and its documentation samples.

use serde_json::Value;

/// One spec from `specs/`, as plain JSON.
pub struct Spec {
    pub vendor: &'static str,
    document: Value,
}

/// A named example of the spec, with its summary (which says where the sample comes from).
#[derive(Clone, Debug)]
pub struct Example {
    pub name: String,
    pub summary: String,
    pub value: Value,
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
            .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The HTTP method (upper case) and path of an operation.
    pub fn route(&self, operation_id: &str) -> (String, String) {
        let (path, method, _) = self.find(operation_id);
        (method.to_uppercase(), path.to_owned())
    }

    /// An operation's extension (`x-…`), if present.
    pub fn extension(&self, operation_id: &str, name: &str) -> Option<&Value> {
        self.find(operation_id).2.get(name)
    }

    /// The request-body examples of an operation.
    pub fn request_examples(&self, operation_id: &str) -> Vec<Example> {
        let body = self.resolve(&self.find(operation_id).2["requestBody"]);
        self.media_examples(body)
    }

    /// The request body's XML sample (`x-xml-example`), if any.
    pub fn request_xml_example(&self, operation_id: &str) -> Option<&str> {
        self.resolve(&self.find(operation_id).2["requestBody"])
            .get("x-xml-example")?
            .as_str()
    }

    /// The response examples of an operation, with their HTTP status, in document order.
    pub fn response_examples(&self, operation_id: &str) -> Vec<(u16, Example)> {
        let responses = self.find(operation_id).2["responses"]
            .as_object()
            .expect("responses");
        let mut all = Vec::new();
        for (status, response) in responses {
            let status: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{}: status {status}", self.vendor));
            for example in self.media_examples(self.resolve(response)) {
                all.push((status, example));
            }
        }
        all
    }

    /// The operation's first HTTP 200 example: what a local host answers while a test captures a request.
    pub fn success_answer(&self, operation_id: &str) -> Value {
        let (_, example) = self
            .response_examples(operation_id)
            .into_iter()
            .find(|(status, _)| *status == 200)
            .unwrap_or_else(|| panic!("{}: {operation_id} has no HTTP 200 example", self.vendor));
        example.value
    }

    /// A response's XML sample (`x-xml-example`), if any.
    pub fn response_xml_example(&self, operation_id: &str, status: u16) -> Option<&str> {
        let response = &self.find(operation_id).2["responses"][status.to_string()];
        self.resolve(response).get("x-xml-example")?.as_str()
    }

    /// The example value of an operation's parameter (by its wire name), e.g. a header documented by a curl.
    pub fn parameter_example(&self, operation_id: &str, name: &str) -> String {
        let parameters = self.find(operation_id).2["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let parameter = parameters
            .iter()
            .map(|p| self.resolve(p))
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{}: {operation_id} has no parameter {name}", self.vendor));
        parameter["example"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no string example"))
            .to_owned()
    }

    fn media_examples(&self, holder: &Value) -> Vec<Example> {
        let mut all = Vec::new();
        for media_type in holder["content"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
        {
            for (name, example) in media_type["examples"].as_object().into_iter().flatten() {
                let example = self.resolve(example);
                all.push(Example {
                    name: name.clone(),
                    summary: example["summary"].as_str().unwrap_or_default().to_owned(),
                    value: example["value"].clone(),
                });
            }
        }
        all
    }

    fn operations(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .iter()
                    .filter(|(_, op)| op.get("operationId").is_some())
                    .map(move |(method, op)| (path.as_str(), method.as_str(), op))
            })
    }

    fn find(&self, operation_id: &str) -> (&str, &str, &Value) {
        self.operations()
            .find(|(_, _, op)| op["operationId"] == operation_id)
            .unwrap_or_else(|| panic!("{}: no operation {operation_id}", self.vendor))
    }

    /// Follows a local `$ref`.
    fn resolve<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            node = self
                .document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling {reference}"));
        }
        node
    }
}
