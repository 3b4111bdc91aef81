//! The request a vendor's page documents (`x-documented-request`: a cURL command or a "METHOD URL" line),
//! taken apart so that tests can compare it with what the client sends.

use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
pub struct DocumentedRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Header names in lower case, as HTTP/1.1 servers compare them.
    pub headers: BTreeMap<String, String>,
}

impl DocumentedRequest {
    pub fn parse(text: &str) -> DocumentedRequest {
        let text = text.replace("\\\n", " ");
        let (method, url, headers) = if text.trim_start().starts_with("curl") {
            let method = word_after(&text, "--request ").unwrap_or_else(|| "GET".to_owned());
            let url = quoted_after(&text, &format!("--request {method} "))
                .expect("a quoted URL after the method");
            let mut headers = BTreeMap::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("--header ") {
                rest = &rest[at + "--header ".len()..];
                let header = quoted_after(rest, "").expect("a quoted header");
                let (name, value) = header.split_once(':').expect("Name: value");
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
            (method, url, headers)
        } else {
            let mut words = text.split_whitespace();
            let method = words.next().expect("a method").to_owned();
            let url = words.next().expect("a URL").to_owned();
            (method, url, BTreeMap::new())
        };
        let after_host = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path_and_query = &after_host[after_host.find('/').unwrap_or(after_host.len())..];
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        DocumentedRequest {
            method,
            path: path.to_owned(),
            query,
            headers,
        }
    }
}

fn word_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    text[start..].split_whitespace().next().map(str::to_owned)
}

fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let open = rest.find('\'')? + 1;
    let close = open + rest[open..].find('\'')?;
    Some(rest[open..close].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_curl_with_headers_and_query() {
        let parsed = DocumentedRequest::parse(
            "curl --location --request POST 'https://h.example:1/a/b?x=1&y=a:b' \\\n--header 'Content-Type: application/json' \\\n--header 'token: t.u.v'",
        );
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.path, "/a/b");
        assert_eq!(
            parsed.query,
            BTreeMap::from([("x".into(), "1".into()), ("y".into(), "a:b".into())])
        );
        assert_eq!(
            parsed.headers,
            BTreeMap::from([
                ("content-type".into(), "application/json".into()),
                ("token".into(), "t.u.v".into())
            ])
        );
    }

    #[test]
    fn parses_a_method_and_url_line() {
        let parsed = DocumentedRequest::parse("POST https://api.example/cgi-bin/x?access_token=T");
        assert_eq!(
            (parsed.method.as_str(), parsed.path.as_str()),
            ("POST", "/cgi-bin/x")
        );
        assert_eq!(parsed.query["access_token"], "T");
        assert!(parsed.headers.is_empty());
    }
}
