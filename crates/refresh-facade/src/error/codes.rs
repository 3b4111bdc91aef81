//! Our reading of the vendors' error codes: each vendor's kind map (`CODE_KINDS` in `vendors/<vendor>.rs`)
//! gives every code its spec documents an [`ErrorKind`].
//!
//! The codes and their meanings are wire facts, generated from the specs into the vendor crates
//! (`error_codes::<field>::<NAME>`); a kind map names them by those constants, so it cannot drift from the spec.
//! ERROR_CODES.md, the table of every code and its kind in the crate docs, is rendered from these compiled maps
//! (`error_codes_markdown`) and kept current by a test of this crate: the table follows the code, not the other way.

use refresh_runtime::{CodeField, ErrorCode, Operation};

use super::{ErrorKind, Redactor, RefreshError};
use crate::vendor::Vendor;

/// How the facade reads one vendor's answers: a kind for every code the vendor documents, for the HTTP error
/// statuses its spec documents (when such an answer carries no code), and for codes it does not document.
pub(crate) struct CodeKinds {
    pub(crate) vendor: Vendor,
    /// The fields of the vendor's answers that carry its codes (the generated `error_codes::ALL`).
    pub(crate) code_fields: &'static [CodeField],
    /// The vendor's operations (the generated `operations::ALL`), whose documented error statuses `statuses` reads.
    pub(crate) operations: &'static [Operation],
    pub(crate) codes: &'static [(ErrorCode, ErrorKind)],
    pub(crate) statuses: &'static [(u16, ErrorKind)],
    pub(crate) undocumented: ErrorKind,
}

impl CodeKinds {
    /// The kind of a documented code, if the map has one.
    pub(crate) fn kind_of(&self, code: &ErrorCode) -> Option<ErrorKind> {
        self.codes
            .iter()
            .find(|(known, _)| known == code)
            .map(|(_, kind)| *kind)
    }

    /// The error for `code`, sent by the vendor in `field` with what else it `said`: the kind of a documented
    /// code, or the vendor's undocumented-code kind. The vendor's code is kept as it was sent; its message and
    /// request id are scrubbed of the request's secrets.
    pub(crate) fn code_error(
        &self,
        field: &CodeField,
        code: &str,
        said: &Said<'_>,
    ) -> RefreshError {
        if field.find(code).is_none() && !looks_like_a_code(code) {
            // Not a code the vendor documents, nor anything shaped like one: it may be any value (a token a
            // vendor echoed in the wrong field), so it is not repeated.
            let detail = format!(
                "{} holds something that is not an error code the vendor documents",
                field.path
            );
            return RefreshError::new(self.vendor, self.undocumented, detail)
                .with_status(said.status)
                .with_vendor_message(said.message, said.redactor);
        }
        let (kind, detail) = match field.find(code) {
            Some(documented) => (
                self.kind_of(documented).unwrap_or(self.undocumented),
                format!("{} {}: {}", field.path, documented.code, documented.meaning),
            ),
            None => (
                self.undocumented,
                format!(
                    "{} {}, a code the vendor does not document",
                    field.path,
                    code.trim()
                ),
            ),
        };
        RefreshError::new(self.vendor, kind, detail)
            .with_status(said.status)
            .with_vendor_code(code.trim())
            .with_vendor_message(said.message, said.redactor)
            .with_request_id(said.request_id.map(|id| said.redactor.redact(id)))
    }

    /// The vendor's error when it `sent` a code in `field` other than the field's success value; `Ok` when it
    /// sent the success value or nothing.
    pub(crate) fn check(
        &self,
        field: &CodeField,
        sent: Option<&str>,
        said: &Said<'_>,
    ) -> Result<(), RefreshError> {
        match sent {
            Some(code) if !field.is_success(code) => Err(self.code_error(field, code, said)),
            _ => Ok(()),
        }
    }

    /// The error for an answer with a documented HTTP error `status` of `operation` that carries no code.
    pub(crate) fn status_error(&self, operation: &Operation, status: u16) -> RefreshError {
        let kind = self
            .statuses
            .iter()
            .find(|(known, _)| *known == status)
            .map_or(ErrorKind::MalformedResponse, |(_, kind)| *kind);
        let detail = match operation.documented(status) {
            Some(documented) => format!("HTTP {status}: {}", documented.description),
            None => format!("HTTP {status}, a status the vendor does not document here"),
        };
        RefreshError::new(self.vendor, kind, detail).with_status(status)
    }

    /// Every documented code of the vendor that the map gives a kind, as [`DocumentedCode`]s.
    pub(crate) fn documented(&self) -> impl Iterator<Item = DocumentedCode> + '_ {
        self.code_fields.iter().flat_map(move |field| {
            field.codes.iter().filter_map(move |code| {
                Some(DocumentedCode {
                    vendor: self.vendor,
                    field: field.path,
                    code: code.code,
                    kind: self.kind_of(code)?,
                    meaning: code.meaning,
                    source: code.source,
                })
            })
        })
    }
}

/// Whether `code` has the shape of a vendor error code: short, of letters, digits, `-` and `_`. Every code the
/// vendors document is (`-1`, `E00003`, `61023`); a longer or other value is not repeated as a code.
pub(crate) fn looks_like_a_code(code: &str) -> bool {
    const LONGEST_CODE: usize = 12;
    let code = code.trim();
    !code.is_empty()
        && code.len() <= LONGEST_CODE
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a vendor's answer said besides its error code.
pub(crate) struct Said<'a> {
    pub(crate) status: Option<u16>,
    pub(crate) message: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
    /// Scrubs the request's secrets from the message and the request id.
    pub(crate) redactor: &'a Redactor<'a>,
}

/// One documented vendor error code and what it means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DocumentedCode {
    pub vendor: Vendor,
    /// Where the vendor puts the code in its answer (`result_data.code`, `errcode`, …).
    pub field: &'static str,
    pub code: &'static str,
    pub kind: ErrorKind,
    /// The vendor's documented meaning.
    pub meaning: &'static str,
    /// Which vendor page documents the code.
    pub source: &'static str,
}

/// The Markdown tables of every error code and HTTP error status the compiled vendors document, with the kind
/// each becomes: the text of this crate's ERROR_CODES.md (with every vendor compiled in), for a tool or a page of
/// one's own.
pub fn error_codes_markdown() -> String {
    error_codes_doc(crate::vendors::CODE_KINDS)
}

/// Every documented error code of every vendor compiled in, with the kind it maps to.
pub fn documented_error_codes() -> Vec<DocumentedCode> {
    crate::vendors::CODE_KINDS
        .iter()
        .flat_map(|kinds| kinds.documented())
        .collect()
}

/// The text of ERROR_CODES.md: every code and HTTP error status the compiled vendors document, with the kind the
/// facade gives it. A code or status without a kind is written as such (and `every_documented_code_has_a_kind`
/// fails): adding a code to a spec never blocks regenerating its vendor crate.
pub(crate) fn error_codes_doc(maps: &[&CodeKinds]) -> String {
    use std::fmt::Write;
    const MISSING: &str = "**none** (add it to `CODE_KINDS`)";
    let mut maps = maps.to_vec();
    maps.sort_by_key(|kinds| kinds.vendor.as_str());
    let mut out = String::from(
        "<!-- This file is rendered from the compiled kind maps (`CODE_KINDS` in src/vendors/<vendor>.rs) and the\n\
         codes the specs document (the vendor crates' generated `error_codes`), do not edit: after a change, run\n\
         `UPDATE_ERROR_CODES=1 cargo test -p refresh-facade --all-features error_codes_doc`. -->\n\n\
         ## Documented vendor error codes\n\n\
         Every error code a vendor documents (its words and the page that says them, from the spec) and the\n\
         [`ErrorKind`] it becomes (our reading, from the facade's kind map).\n\n\
         | vendor | field | code | kind | meaning | source |\n|---|---|---|---|---|---|\n",
    );
    for kinds in &maps {
        for field in kinds.code_fields {
            for code in field.codes {
                let kind = kinds.kind_of(code).map_or(MISSING, ErrorKind::as_str);
                writeln!(
                    out,
                    "| {} | {} | {} | {kind} | {} | {} |",
                    kinds.vendor, field.path, code.code, code.meaning, code.source
                )
                .expect("writing to a String");
            }
        }
    }
    out.push_str(
        "\nHTTP error statuses the specs document, and the kind of such an answer when it carries no documented code.\n\n\
         | vendor | operation | status | kind | meaning |\n|---|---|---|---|---|\n",
    );
    for kinds in &maps {
        for operation in kinds.operations {
            for status in operation
                .statuses
                .iter()
                .filter(|status| status.status >= 400)
            {
                let kind = kinds
                    .statuses
                    .iter()
                    .find(|(known, _)| *known == status.status)
                    .map_or(MISSING, |(_, kind)| kind.as_str());
                writeln!(
                    out,
                    "| {} | {} | {} | {kind} | {} |",
                    kinds.vendor,
                    operation.id,
                    status.status,
                    status.description.trim().replace('\n', " ")
                )
                .expect("writing to a String");
            }
        }
    }
    out.push_str(
        "\nA code a vendor does not document keeps its code and message (when it is shaped like a code), and\n\
         becomes the vendor's kind below. Why: nothing says the same request would succeed later, so it is not\n\
         retried (a code the vendor's own table marks as a server-side failure is documented, and transient;\n\
         Ekuaibao's codes are HTTP statuses, so an undocumented 5xx code of its is transient too);\n\
         nothing says the credential is gone, so it does not ask for a new login, which could throw away a live\n\
         refresh token on a guess; it stays visible to an operator with the vendor's own code and message.\n\n\
         | vendor | kind |\n|---|---|\n",
    );
    for kinds in &maps {
        writeln!(
            out,
            "| {} | {} |",
            kinds.vendor,
            kinds.undocumented.as_str()
        )
        .expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    use refresh_runtime::DocumentedStatus;

    use super::*;

    const BUSY: ErrorCode = ErrorCode {
        field: "errcode",
        code: "-1",
        name: "SYSTEM_BUSY",
        meaning: "system busy",
        source: "the error table",
    };
    const UNMAPPED: ErrorCode = ErrorCode {
        field: "errcode",
        code: "7",
        name: "UNMAPPED",
        meaning: "a code the map forgot",
        source: "the error table",
    };
    const ERRCODE: CodeField = CodeField {
        path: "errcode",
        success: Some("0"),
        codes: &[BUSY, UNMAPPED],
    };
    const KINDS: CodeKinds = CodeKinds {
        vendor: Vendor::WechatOpen,
        code_fields: &[ERRCODE],
        operations: &[REFRESH],
        codes: &[(BUSY, ErrorKind::Transient)],
        statuses: &[(401, ErrorKind::ReauthorizationRequired)],
        undocumented: ErrorKind::InvalidRequest,
    };
    const REFRESH: Operation = Operation {
        id: "refresh",
        method: "POST",
        path: "/refresh",
        statuses: &[DocumentedStatus {
            status: 401,
            decoded: false,
            description: "The token is expired.",
        }],
        empty_body_content_type: None,
        tokens: &[],
    };

    static NO_SECRETS: Redactor<'static> = Redactor::none();

    /// The table names each code's kind, says so of a code the map forgot, and gives each documented error
    /// status the kind of an answer with no code.
    #[test]
    fn the_code_table_is_rendered_from_the_kind_map() {
        let doc = error_codes_doc(&[&KINDS]);
        let rows: Vec<&str> = doc
            .lines()
            .filter(|line| line.starts_with("| wechat-open"))
            .collect();
        assert_eq!(
            rows,
            [
                "| wechat-open | errcode | -1 | transient | system busy | the error table |",
                "| wechat-open | errcode | 7 | **none** (add it to `CODE_KINDS`) | a code the map forgot | the error table |",
                "| wechat-open | refresh | 401 | reauthorization_required | The token is expired. |",
                "| wechat-open | invalid_request |",
            ]
        );
    }

    fn said(message: Option<&'static str>, request_id: Option<&'static str>) -> Said<'static> {
        Said {
            status: Some(200),
            message,
            request_id,
            redactor: &NO_SECRETS,
        }
    }

    #[test]
    fn a_documented_code_gets_its_kind_and_meaning() {
        let error = KINDS.code_error(&ERRCODE, " -1", &said(Some("busy"), Some("rid-1")));
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert_eq!(error.detail(), "errcode -1: system busy");
        assert_eq!(error.vendor_code(), Some("-1"));
        assert_eq!(error.http_status(), Some(200));
        assert_eq!(error.vendor(), Vendor::WechatOpen);
        assert_eq!(error.vendor_message(), Some("busy"));
        assert_eq!(error.request_id(), Some("rid-1"));
    }

    #[test]
    fn the_message_and_the_request_id_are_scrubbed_of_secrets() {
        let redactor = Redactor::new(["secret-token-1"]);
        let said = Said {
            status: Some(200),
            message: Some("bad token secret-token-1"),
            request_id: Some("secret-token-1"),
            redactor: &redactor,
        };
        let error = KINDS.code_error(&ERRCODE, "-1", &said);
        assert_eq!(error.vendor_message(), Some("bad token [redacted]"));
        assert_eq!(error.request_id(), Some("[redacted]"));
    }

    #[test]
    fn an_undocumented_code_keeps_its_code_and_gets_the_undocumented_kind() {
        let error = KINDS.code_error(&ERRCODE, "99999", &said(None, None));
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        assert_eq!(
            error.detail(),
            "errcode 99999, a code the vendor does not document"
        );
        assert_eq!(error.vendor_code(), Some("99999"));
        let unmapped = KINDS.code_error(&ERRCODE, "7", &said(None, None));
        assert_eq!(unmapped.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn only_a_code_other_than_the_success_value_is_an_error() {
        let said = said(None, None);
        assert!(KINDS.check(&ERRCODE, None, &said).is_ok());
        assert!(KINDS.check(&ERRCODE, Some("0"), &said).is_ok());
        let error = KINDS.check(&ERRCODE, Some("-1"), &said).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert_eq!(error.vendor_code(), Some("-1"));
    }

    #[test]
    fn a_value_that_is_no_code_is_not_repeated() {
        let token_like = "CANARY7d1e0c9bRefreshKitToken";
        let error = KINDS.code_error(&ERRCODE, token_like, &said(Some("m"), None));
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        assert_eq!(error.vendor_code(), None);
        assert!(!error.to_string().contains(token_like), "{error}");
        assert_eq!(error.vendor_message(), Some("m"));
        for code in ["-1", "E00003", "61023", "a_b-12345678"] {
            assert!(looks_like_a_code(code), "{code}");
        }
        for value in ["", "a b", "1234567890123", "tok.en", "ünï"] {
            assert!(!looks_like_a_code(value), "{value}");
        }
    }

    #[test]
    fn documented_statuses_are_read_with_the_spec_description() {
        let error = KINDS.status_error(&REFRESH, 401);
        assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
        assert_eq!(error.detail(), "HTTP 401: The token is expired.");
        assert_eq!(error.http_status(), Some(401));
        assert_eq!(error.vendor_code(), None, "a status is not a vendor code");
        let other = KINDS.status_error(&REFRESH, 409);
        assert_eq!(other.kind(), ErrorKind::MalformedResponse);
        assert_eq!(
            other.detail(),
            "HTTP 409, a status the vendor does not document here"
        );
    }

    #[test]
    fn only_mapped_codes_are_listed_as_documented() {
        let listed: Vec<DocumentedCode> = KINDS.documented().collect();
        assert_eq!(
            listed,
            [DocumentedCode {
                vendor: Vendor::WechatOpen,
                field: "errcode",
                code: "-1",
                kind: ErrorKind::Transient,
                meaning: "system busy",
                source: "the error table",
            }]
        );
    }
}
