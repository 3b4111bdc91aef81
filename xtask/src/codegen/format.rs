//! Turns generated tokens into source text that `cargo fmt --check` accepts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use proc_macro2::{Delimiter, Group, Literal, Punct, Spacing, TokenStream, TokenTree};

/// Formats progenitor's `client` tokens followed by the hand-templated `extra` source.
///
/// prettyplease first (it lays out any token stream sensibly, where rustfmt leaves over-long lines alone), then
/// the toolchain's stable rustfmt with the workspace's rustfmt.toml, so that the committed file is exactly what
/// `cargo fmt` would make of it.
pub fn rust_source(root: &Path, client: TokenStream, extra: &str) -> Result<String, String> {
    let client = split_doc_attributes(client);
    let file: syn::File =
        syn::parse2(client).map_err(|e| format!("progenitor produced unparsable code: {e}"))?;
    let mut source = prettyplease::unparse(&file);
    source.push('\n');
    source.push_str(extra);
    rustfmt(root, &source)
}

fn rustfmt(root: &Path, source: &str) -> Result<String, String> {
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(&rustfmt)
        .arg("--config-path")
        .arg(root.join("rustfmt.toml"))
        .args(["--edition", "2024"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run rustfmt ({e}); install it with `rustup component add rustfmt`")
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Write on a thread: rustfmt starts answering before it has read everything, and both pipes are bounded.
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt did not finish: {e}"))?;
    writer
        .join()
        .map_err(|_| "the thread feeding rustfmt panicked".to_owned())?
        .map_err(|e| format!("cannot feed rustfmt: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| "rustfmt printed non-UTF-8 output".to_owned())
}

/// Rewrites every multi-line `#[doc = "…"]` as one `#[doc = " line"]` per line, which print as `/// line`.
///
/// prettyplease prints a multi-line doc attribute as a `/** … */` block, and rustfmt then indents the block's
/// continuation lines to the item's depth. Those spaces become part of the documentation, where Markdown reads
/// an indented paragraph as a code block and rustdoc compiles it as a doctest. Line comments keep the
/// indentation outside the text.
fn split_doc_attributes(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(hash) if hash.as_char() == '#' => {
                let doc = match tokens.peek() {
                    Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Bracket => {
                        doc_text(group)
                    }
                    _ => None,
                };
                match doc.filter(|text| text.contains('\n')) {
                    Some(text) => {
                        tokens.next();
                        for line in text.lines() {
                            let line = if line.is_empty() {
                                String::new()
                            } else {
                                format!(" {line}")
                            };
                            out.push(TokenTree::Punct(Punct::new('#', Spacing::Alone)));
                            let attribute: TokenStream = syn::parse_quote!(doc = #line);
                            out.push(TokenTree::Group(Group::new(Delimiter::Bracket, attribute)));
                        }
                    }
                    None => out.push(TokenTree::Punct(hash)),
                }
            }
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), split_doc_attributes(group.stream()));
                inner.set_span(group.span());
                out.push(TokenTree::Group(inner));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// The text of `[doc = "…"]`, if the bracket group is a doc attribute with a string literal.
fn doc_text(group: &Group) -> Option<String> {
    let mut parts = group.stream().into_iter();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (
            Some(TokenTree::Ident(ident)),
            Some(TokenTree::Punct(eq)),
            Some(TokenTree::Literal(literal)),
            None,
        ) if ident == "doc" && eq.as_char() == '=' => string_value(literal),
        _ => None,
    }
}

fn string_value(literal: Literal) -> Option<String> {
    syn::parse2::<syn::LitStr>(TokenTree::Literal(literal).into())
        .ok()
        .map(|s| s.value())
}
