//! One request to an emulator, written with what its answer must be:
//!
//! ```ignore
//! Case::new(&REFRESH_TOKEN, "rotated away").header("x-access-key", KEY).json(body).answers_code("/result_data/code", "5")
//! ```
//!
//! Requests are sent raw (not through the generated client): the tests must see the raw answer.

use refresh_runtime::Operation;
use serde_json::Value;

/// A request for one operation of an emulator, and the answer it expects.
#[must_use = "a case does nothing until it is sent"]
pub struct Case {
    operation: &'static Operation,
    label: &'static str,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    status: u16,
    code: Option<(&'static str, Value)>,
}

/// What an emulator answered to a [`Case`].
pub struct Answer {
    pub operation: &'static Operation,
    pub label: &'static str,
    pub status: u16,
    pub body: Option<Value>,
}

impl Answer {
    /// The body's value at a JSON pointer (`/result_data/refresh_token`), as text.
    pub fn text(&self, pointer: &str) -> String {
        self.body
            .as_ref()
            .and_then(|body| body.pointer(pointer))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}: no text at {pointer} in {:?}", self.label, self.body))
            .to_owned()
    }
}

impl Case {
    /// A request for `operation` (its method and path), described by `label` in failures. It expects HTTP 200.
    pub fn new(operation: &'static Operation, label: &'static str) -> Self {
        Case {
            operation,
            label,
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            status: 200,
            code: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The answer must come with HTTP `status`.
    pub fn answers_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The answer's body must hold `code` at the JSON `pointer` (`Value::Null`: nothing there).
    pub fn answers_code(mut self, pointer: &'static str, code: impl Into<Value>) -> Self {
        self.code = Some((pointer, code.into()));
        self
    }

    /// Sends the request to the emulator at `base` and checks the answer against what the case expects.
    pub async fn send(self, base: &str) -> Answer {
        let method = self.operation.method.parse().expect("an HTTP method");
        let mut request = reqwest::Client::new()
            .request(method, format!("{base}{}", self.operation.path))
            .query(&self.query);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body: Option<Value> = (!bytes.is_empty())
            .then(|| serde_json::from_slice(&bytes).expect("the emulators answer JSON"));
        let context = format!("{} ({}): {body:?}", self.operation.id, self.label);
        assert_eq!(status, self.status, "{context}");
        if let Some((pointer, code)) = &self.code {
            let sent = body
                .as_ref()
                .and_then(|b| b.pointer(pointer))
                .unwrap_or(&Value::Null);
            assert_eq!(sent, code, "{context}: {pointer}");
        }
        Answer {
            operation: self.operation,
            label: self.label,
            status,
            body,
        }
    }
}
