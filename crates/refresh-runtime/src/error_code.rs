//! A vendor's documented error codes, as generated constants (`error_codes::errcode::INVALID_REFRESH_TOKEN`).
//!
//! The code and its meaning are the vendor's words, so they are written once, in the spec (`x-error-codes` on the
//! field that carries them), and generated into the vendor crate. What a code means for the caller (retry, log in
//! again, fix the configuration) is refresh-kit's reading, and lives in the facade.

/// One error code a vendor documents for one field of its answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// Where the vendor puts the code in its answer, as a JSON path (`result_data.code`).
    pub field: &'static str,
    /// The code as the vendor sends it, written as text (`"-1"`, `"E912"`, `"40001"`).
    pub code: &'static str,
    /// The generated constant's name (`INVALID_REFRESH_TOKEN`).
    pub name: &'static str,
    /// The vendor's documented meaning.
    pub meaning: &'static str,
    /// Which vendor page documents the code and its meaning.
    pub source: &'static str,
}

/// A field of a vendor's answers that carries error codes: every code the vendor documents for it, and the value
/// that means success, where the vendor sends one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeField {
    /// The JSON path of the field (`result_data.code`).
    pub path: &'static str,
    /// The value meaning "no error" (`"0"`), where the vendor sends one on success.
    pub success: Option<&'static str>,
    pub codes: &'static [ErrorCode],
}

impl CodeField {
    /// The documented code `code`, as the vendor sent it (a number is compared in its decimal form).
    pub fn find(&self, code: &str) -> Option<&'static ErrorCode> {
        let code = code.trim();
        self.codes.iter().find(|c| c.code == code)
    }

    /// Whether `code` is the field's success value.
    pub fn is_success(&self, code: &str) -> bool {
        self.success == Some(code.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: ErrorCode = ErrorCode {
        field: "errcode",
        code: "-1",
        name: "SYSTEM_BUSY",
        meaning: "system busy",
        source: "the error table",
    };
    const EXPIRED: ErrorCode = ErrorCode {
        field: "errcode",
        code: "42002",
        name: "REFRESH_TOKEN_EXPIRED",
        meaning: "refresh token expired",
        source: "the context list",
    };
    const ERRCODE: CodeField = CodeField {
        path: "errcode",
        success: Some("0"),
        codes: &[BUSY, EXPIRED],
    };

    #[test]
    fn codes_are_found_as_sent() {
        assert_eq!(ERRCODE.find("-1"), Some(&BUSY));
        assert_eq!(ERRCODE.find(" 42002 "), Some(&EXPIRED));
        assert_eq!(ERRCODE.find("42003"), None);
        assert_eq!(ERRCODE.find("0"), None);
    }

    #[test]
    fn the_success_value_is_not_an_error() {
        assert!(ERRCODE.is_success("0"));
        assert!(ERRCODE.is_success(" 0"));
        assert!(!ERRCODE.is_success("-1"));
        let without = CodeField {
            success: None,
            ..ERRCODE
        };
        assert!(!without.is_success("0"));
    }
}
