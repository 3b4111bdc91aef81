//! What in a vendor's answer did not match its documentation, when the tokens could still be kept: one variant per
//! kind, so that the manager can count them by kind and a test can match one without matching English.

use std::fmt;

/// One way a vendor's answer differed from its documentation while its tokens were kept
/// ([`crate::TokenSet::anomalies`]). Names fields and JSON types, never a value of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// The answer did not decode as the documented types; its tokens were read from the fields the spec marks.
    UndocumentedTypes { line: usize, column: usize },
    /// An error-code field held a value that is no code (an object, an array); it was ignored.
    CodeNotACode { field: String, found: &'static str },
    /// A token field held something other than text; it was not taken for a token.
    TokenNotText { field: String, found: &'static str },
    /// No expiry could be read where the spec marks one: the conservative lifetime applies.
    NoReadableExpiry,
    /// Sugon AC: the answer has no `code` at all.
    NoCode,
    /// Sugon AC: a login's answer has no region that is the platform's; the first region's token was taken.
    NoPlatformRegion,
    /// Sugon AC: a login's `data` is one token, not the documented list of regions.
    OneTokenNotRegions,
    /// Sugon AC: a renewal's token is not a JWT, so it has no expiry claim; it was kept.
    NotAJwt,
}

impl Anomaly {
    /// A stable name for the kind, for metrics and machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::UndocumentedTypes { .. } => "undocumented_types",
            Anomaly::CodeNotACode { .. } => "code_not_a_code",
            Anomaly::TokenNotText { .. } => "token_not_text",
            Anomaly::NoReadableExpiry => "no_readable_expiry",
            Anomaly::NoCode => "no_code",
            Anomaly::NoPlatformRegion => "no_platform_region",
            Anomaly::OneTokenNotRegions => "one_token_not_regions",
            Anomaly::NotAJwt => "not_a_jwt",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::UndocumentedTypes { line, column } => write!(
                f,
                "the answer does not match the documented types (line {line}, column {column}); its tokens were \
                 read from the fields the spec marks"
            ),
            Anomaly::CodeNotACode { field, found } => {
                write!(f, "error code `{field}` is a {found} that is no code: ignored")
            }
            Anomaly::TokenNotText { field, found } => {
                write!(f, "`{field}` is a {found}, not a token: ignored")
            }
            Anomaly::NoReadableExpiry => {
                f.write_str("no readable expiry: the conservative lifetime applies")
            }
            Anomaly::NoCode => f.write_str("the answer has no `code`"),
            Anomaly::NoPlatformRegion => f.write_str(
                "no region is the platform's (clusterId 0, \"ac\"): the first region's token was taken",
            ),
            Anomaly::OneTokenNotRegions => {
                f.write_str("`data` is one token, not the documented list of regions")
            }
            Anomaly::NotAJwt => {
                f.write_str("the renewed token is not a JWT: kept, with no expiry claim to read")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_name_and_says_no_value() {
        let all = [
            Anomaly::UndocumentedTypes { line: 1, column: 2 },
            Anomaly::CodeNotACode {
                field: "code".into(),
                found: "object",
            },
            Anomaly::TokenNotText {
                field: "value.refreshToken".into(),
                found: "number",
            },
            Anomaly::NoReadableExpiry,
            Anomaly::NoCode,
            Anomaly::NoPlatformRegion,
            Anomaly::OneTokenNotRegions,
            Anomaly::NotAJwt,
        ];
        let kinds: std::collections::BTreeSet<&str> = all.iter().map(Anomaly::kind).collect();
        assert_eq!(kinds.len(), all.len());
        assert_eq!(
            all[2].to_string(),
            "`value.refreshToken` is a number, not a token: ignored"
        );
        assert!(all[0].to_string().contains("(line 1, column 2)"));
    }
}
