//! Turns generated tokens into source text that `cargo fmt --check` accepts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Formats progenitor's `client` tokens followed by the hand-templated `extra` source.
///
/// prettyplease first (it lays out any token stream sensibly, where rustfmt leaves over-long lines alone), then
/// the toolchain's stable rustfmt with the workspace's rustfmt.toml, so that the committed file is exactly what
/// `cargo fmt` would make of it.
pub fn rust_source(
    root: &Path,
    client: proc_macro2::TokenStream,
    extra: &str,
) -> Result<String, String> {
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
