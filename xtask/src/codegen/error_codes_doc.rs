//! `crates/refresh-facade/ERROR_CODES.md`: every vendor error code (the spec's words) with the kind the facade
//! gives it (the facade's reading), generated so that it is never hand-kept.
//!
//! The codes come from the specs' `x-error-codes`. The kinds come from each facade vendor file's `CODE_KINDS`,
//! read as source with `syn`: xtask depends on no project crate, so that it can regenerate crates that do not
//! compile. `CODE_KINDS` has one fixed shape, a struct literal of constant tables:
//!
//! ```ignore
//! pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
//!     vendor: VENDOR,
//!     code_fields: refresh_wechat_open::error_codes::ALL,
//!     codes: &[(errcode::SYSTEM_BUSY, Transient), …],
//!     statuses: &[(401, ReauthorizationRequired)],
//!     undocumented: InvalidRequest,
//! };
//! ```
//!
//! A code without a kind is written as such; the facade's tests fail on it, so adding a code to a spec never
//! blocks regenerating the vendor crate.

use std::fmt::Write;
use std::path::Path;

use syn::{Expr, Item};

use super::error_codes::CodeField;

/// The facade file with a vendor's kind map, relative to the workspace root.
pub fn kinds_file(vendor: &str) -> String {
    format!(
        "crates/refresh-facade/src/vendors/{}.rs",
        vendor.replace('-', "_")
    )
}

/// What the generator knows of one vendor.
pub struct VendorCodes {
    pub vendor: String,
    pub fields: Vec<CodeField>,
    /// `(operation id, status, description)` of the documented HTTP error statuses.
    pub error_statuses: Vec<(String, u16, String)>,
}

/// The kind map of one vendor, as written in its facade file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    /// `(field module, constant name, kind)`.
    codes: Vec<(String, String, String)>,
    statuses: Vec<(u16, String)>,
    undocumented: Option<String>,
}

/// Reads `CODE_KINDS` from a facade vendor file's source. A missing file or constant gives no kinds.
pub fn read_kinds(root: &Path, vendor: &str) -> Result<Kinds, String> {
    let path = root.join(kinds_file(vendor));
    let Ok(source) = std::fs::read_to_string(&path) else {
        return Ok(Kinds::default());
    };
    parse_kinds(&source).map_err(|problem| format!("{}: {problem}", kinds_file(vendor)))
}

fn parse_kinds(source: &str) -> Result<Kinds, String> {
    let file = syn::parse_file(source).map_err(|e| format!("not parsable Rust: {e}"))?;
    let Some(expr) = file.items.iter().find_map(|item| match item {
        Item::Const(c) if c.ident == "CODE_KINDS" => Some(&*c.expr),
        _ => None,
    }) else {
        return Ok(Kinds::default());
    };
    let shape = "CODE_KINDS must be `CodeKinds { vendor, code_fields, codes: &[(module::CODE, Kind), …], statuses: &[(status, Kind), …], undocumented: Kind }`";
    let Expr::Struct(literal) = expr else {
        return Err(shape.into());
    };
    let mut kinds = Kinds::default();
    for field in &literal.fields {
        let syn::Member::Named(name) = &field.member else {
            return Err(shape.into());
        };
        match name.to_string().as_str() {
            "codes" => {
                for (code, kind) in pairs(&field.expr).ok_or(shape)? {
                    let segments = path_segments(code).ok_or(shape)?;
                    let [.., module, constant] = segments.as_slice() else {
                        return Err(shape.into());
                    };
                    kinds.codes.push((
                        module.clone(),
                        constant.clone(),
                        kind_name(kind).ok_or(shape)?,
                    ));
                }
            }
            "statuses" => {
                for (status, kind) in pairs(&field.expr).ok_or(shape)? {
                    let Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(status),
                        ..
                    }) = status
                    else {
                        return Err(shape.into());
                    };
                    let status = status.base10_parse().map_err(|_| shape.to_owned())?;
                    kinds.statuses.push((status, kind_name(kind).ok_or(shape)?));
                }
            }
            "undocumented" => kinds.undocumented = Some(kind_name(&field.expr).ok_or(shape)?),
            "vendor" | "code_fields" => {}
            _ => return Err(shape.into()),
        }
    }
    Ok(kinds)
}

/// The `(a, b)` elements of `&[(a, b), …]`.
fn pairs(expr: &Expr) -> Option<Vec<(&Expr, &Expr)>> {
    let Expr::Reference(reference) = expr else {
        return None;
    };
    let Expr::Array(array) = &*reference.expr else {
        return None;
    };
    array
        .elems
        .iter()
        .map(|element| match element {
            Expr::Tuple(tuple) if tuple.elems.len() == 2 => {
                Some((&tuple.elems[0], &tuple.elems[1]))
            }
            _ => None,
        })
        .collect()
}

fn path_segments(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Path(path) => Some(
            path.path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// `ReauthorizationRequired` or `ErrorKind::ReauthorizationRequired` → `reauthorization_required`.
fn kind_name(expr: &Expr) -> Option<String> {
    path_segments(expr)?
        .last()
        .map(|variant| super::error_codes::snake_case(variant))
}

/// The text of ERROR_CODES.md for `vendors`, with each vendor's kinds from `kinds`.
pub fn render(vendors: &[(VendorCodes, Kinds)]) -> String {
    let mut out = String::from(
        "<!-- This file was generated by `cargo xtask codegen`, do not edit: the codes come from the specs'\n\
         `x-error-codes`, the kinds from `CODE_KINDS` in src/vendors/<vendor>.rs. -->\n\n\
         ## Documented vendor error codes\n\n\
         Every error code a vendor documents (its words and the page that says them, from the spec) and the\n\
         [`ErrorKind`] it becomes (our reading, from the facade's kind map).\n\n\
         | vendor | field | code | kind | meaning | source |\n|---|---|---|---|---|---|\n",
    );
    const MISSING: &str = "**none** (add it to `CODE_KINDS`)";
    for (codes, kinds) in vendors {
        for field in &codes.fields {
            let module = field.module_name();
            for code in &field.codes {
                let kind = kinds
                    .codes
                    .iter()
                    .find(|(m, c, _)| *m == module && *c == code.name)
                    .map_or(MISSING, |(_, _, kind)| kind.as_str());
                writeln!(
                    out,
                    "| {} | {} | {} | {kind} | {} | {} |",
                    codes.vendor, field.path, code.code, code.meaning, code.source
                )
                .expect("writing to a String");
            }
        }
    }
    out.push_str(
        "\nHTTP error statuses the specs document, and the kind of such an answer when it carries no documented code.\n\n\
         | vendor | operation | status | kind | meaning |\n|---|---|---|---|---|\n",
    );
    for (codes, kinds) in vendors {
        for (operation, status, description) in &codes.error_statuses {
            let kind = kinds
                .statuses
                .iter()
                .find(|(s, _)| s == status)
                .map_or(MISSING, |(_, kind)| kind.as_str());
            writeln!(
                out,
                "| {} | {operation} | {status} | {kind} | {} |",
                codes.vendor,
                description.replace('\n', " ")
            )
            .expect("writing to a String");
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
    for (codes, kinds) in vendors {
        let kind = kinds.undocumented.as_deref().unwrap_or(MISSING);
        writeln!(out, "| {} | {kind} |", codes.vendor).expect("writing to a String");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::error_codes::Code;

    const SOURCE: &str = r#"
        use crate::error::ErrorKind::*;
        pub(crate) const CODE_KINDS: CodeKinds = CodeKinds {
            vendor: VENDOR,
            code_fields: refresh_x::error_codes::ALL,
            codes: &[
                (errcode::SYSTEM_BUSY, Transient),
                (refresh_x::error_codes::errcode::EXPIRED, ErrorKind::ReauthorizationRequired),
            ],
            statuses: &[(401, ReauthorizationRequired)],
            undocumented: InvalidRequest,
        };
    "#;

    #[test]
    fn the_kind_map_is_read_from_source() {
        let kinds = parse_kinds(SOURCE).unwrap();
        assert_eq!(
            kinds,
            Kinds {
                codes: vec![
                    ("errcode".into(), "SYSTEM_BUSY".into(), "transient".into()),
                    (
                        "errcode".into(),
                        "EXPIRED".into(),
                        "reauthorization_required".into()
                    ),
                ],
                statuses: vec![(401, "reauthorization_required".into())],
                undocumented: Some("invalid_request".into()),
            }
        );
    }

    #[test]
    fn another_shape_is_refused_and_no_constant_means_no_kinds() {
        let error = parse_kinds("const CODE_KINDS: X = [1, 2];").unwrap_err();
        assert!(error.starts_with("CODE_KINDS must be"), "{error}");
        let error = parse_kinds("const CODE_KINDS: X = X { codes: &[(1, 2)] };").unwrap_err();
        assert!(error.starts_with("CODE_KINDS must be"), "{error}");
        let three = "const CODE_KINDS: X = X { codes: &[(errcode::A, Transient, 3)] };";
        assert!(
            parse_kinds(three)
                .unwrap_err()
                .starts_with("CODE_KINDS must be")
        );
        assert_eq!(
            parse_kinds("const OTHER: u8 = 1;").unwrap(),
            Kinds::default()
        );
    }

    #[test]
    fn codes_without_a_kind_are_rendered_as_such() {
        let vendor = VendorCodes {
            vendor: "wechat-open".into(),
            fields: vec![CodeField {
                path: "errcode".into(),
                success: Some("0".into()),
                codes: vec![
                    Code {
                        code: "-1".into(),
                        name: "SYSTEM_BUSY".into(),
                        meaning: "system busy".into(),
                        source: "the page".into(),
                    },
                    Code {
                        code: "61023".into(),
                        name: "INVALID_REFRESH_TOKEN".into(),
                        meaning: "invalid refresh token".into(),
                        source: "the list".into(),
                    },
                ],
            }],
            error_statuses: vec![("refresh".into(), 401, "expired".into())],
        };
        let text = render(&[(vendor, parse_kinds(SOURCE).unwrap())]);
        assert!(
            text.contains("| wechat-open | errcode | -1 | transient | system busy |"),
            "{text}"
        );
        assert!(
            text.contains("| wechat-open | errcode | 61023 | **none** (add it to `CODE_KINDS`) | invalid refresh token | the list |"),
            "{text}"
        );
        assert!(
            text.contains("| wechat-open | refresh | 401 | reauthorization_required | expired |"),
            "{text}"
        );
        assert!(text.contains("| wechat-open | invalid_request |"), "{text}");
    }
}
