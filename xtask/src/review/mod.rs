//! `cargo xtask review [--base REF] [--out FILE]`: one Markdown report of what a change does to users, for a pull
//! request's reviewer. It compares the working tree with `REF` (default `HEAD`: what is not committed yet):
//!
//! 1. **Specs**: per changed `specs/*.yaml`, the operations, parameters, request and answer fields, error codes and
//!    servers added, removed or changed (`specs.rs`). Removals and type changes are in bold: they break callers.
//! 2. **Vendor crates**: each changed vendor crate's public API against the base, with cargo-semver-checks's verdict
//!    (`semver.rs`; installed on first use).
//! 3. **Snapshots**: every insta snapshot added, removed or changed, each with its diff.
//! 4. **ERROR_CODES.md**: its diff, and every documented code that has no kind yet.
//! 5. **Generated files** that are stale (the change needs `cargo xtask codegen`).
//!
//! Git is read with the `git` command; nothing in the working tree is written.

mod semver;
mod specs;

pub use semver::ensure_tool as ensure_semver_checks;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use similar::TextDiff;

use crate::codegen;

const ERROR_CODES: &str = "crates/refresh-facade/ERROR_CODES.md";
/// How ERROR_CODES.md marks a code the facade has no kind for.
const NO_KIND: &str = "**none**";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub base: String,
    pub out: Option<PathBuf>,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let mut options = Options {
            base: "HEAD".into(),
            out: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .map(|v| v.to_string())
                    .ok_or(format!("{arg} needs a value"))
            };
            match *arg {
                "--base" => options.base = value()?,
                "--out" => options.out = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

pub fn run(root: &Path, options: &Options) -> ExitCode {
    match report(root, &options.base) {
        Ok(report) => {
            match &options.out {
                Some(path) => {
                    if let Err(error) = std::fs::write(path, &report) {
                        eprintln!("error: {}: {error}", path.display());
                        return ExitCode::FAILURE;
                    }
                }
                None => print!("{report}"),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The two sides compared: a revision, and the working tree.
struct Sides<'a> {
    root: &'a Path,
    base: &'a str,
}

impl Sides<'_> {
    fn git(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("git")
            .current_dir(self.root)
            .args(args)
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A file at the base, if it exists there.
    fn before(&self, path: &str) -> Option<String> {
        self.git(&["show", &format!("{}:{path}", self.base)]).ok()
    }

    /// A file in the working tree, if it exists.
    fn after(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path)).ok()
    }

    /// Every file at the base, and every file of the working tree that git does not ignore.
    fn files(&self) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
        let lines =
            |text: String| -> BTreeSet<String> { text.lines().map(str::to_owned).collect() };
        let before = lines(self.git(&["ls-tree", "-r", "--name-only", self.base])?);
        let after = lines(self.git(&["ls-files", "--cached", "--others", "--exclude-standard"])?)
            .into_iter()
            .filter(|path| self.root.join(path).is_file())
            .collect();
        Ok((before, after))
    }
}

/// The report, as Markdown.
pub fn report(root: &Path, base: &str) -> Result<String, String> {
    let sides = Sides { root, base };
    let commit = sides.git(&["rev-parse", "--short", &format!("{base}^{{commit}}")])?;
    let (before, after) = sides.files()?;
    let all: BTreeSet<&String> = before.union(&after).collect();
    let changed: Vec<&String> = all
        .into_iter()
        .filter(|path| sides.before(path) != sides.after(path))
        .collect();

    let mut out = String::new();
    let _ = writeln!(out, "# What this change does to users\n");
    let _ = writeln!(
        out,
        "Compared: `{base}` ({}) → the working tree. {} files differ.\n",
        commit.trim(),
        changed.len()
    );
    spec_section(&sides, &changed, &mut out);
    crate_section(&sides, &changed, &mut out)?;
    snapshot_section(&sides, &changed, &mut out);
    error_codes_section(&sides, &mut out);
    generated_section(root, &mut out);
    Ok(out)
}

fn spec_section(sides: &Sides<'_>, changed: &[&String], out: &mut String) {
    let _ = writeln!(out, "## Specs\n");
    let specs: Vec<&&String> = changed
        .iter()
        .filter(|p| p.starts_with("specs/") && p.ends_with(".yaml"))
        .collect();
    if specs.is_empty() {
        let _ = writeln!(out, "No spec changed.\n");
    }
    for path in specs {
        let read = |text: Option<String>| text.map(|t| specs::Surface::read(&t)).transpose();
        let _ = writeln!(out, "### `{path}`\n");
        match (read(sides.before(path)), read(sides.after(path))) {
            (Ok(before), Ok(after)) => {
                let status = match (&before, &after) {
                    (None, _) => "new spec: everything in it is added.\n",
                    (_, None) => "**spec removed**: its vendor crate loses its source.\n",
                    _ => "",
                };
                out.push_str(status);
                let text = specs::describe(&before.unwrap_or_default(), &after.unwrap_or_default());
                if text.is_empty() {
                    let _ = writeln!(
                        out,
                        "Edited, with nothing a user meets (descriptions, examples).\n"
                    );
                } else {
                    let _ = writeln!(out, "{text}");
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                let _ = writeln!(out, "**does not parse**: {error}\n");
            }
        }
    }
}

/// The vendor crates: one per spec, `crates/<vendor>`, named in its Cargo.toml. Each gets cargo-semver-checks's
/// verdict and the `pub` declarations its generated code gained and lost: the tool has no lint for a field or
/// parameter whose type changed, which is how a spec edit most often breaks a caller, and the declarations show it.
fn crate_section(sides: &Sides<'_>, changed: &[&String], out: &mut String) -> Result<(), String> {
    let _ = writeln!(out, "## Vendor crates' public API\n");
    let vendors: BTreeSet<String> = changed
        .iter()
        .filter_map(|path| {
            let vendor = path.strip_prefix("crates/")?.split('/').next()?;
            let spec = format!("specs/{vendor}.yaml");
            (sides.after(&spec).is_some() || sides.before(&spec).is_some())
                .then(|| vendor.to_owned())
        })
        .collect();
    if vendors.is_empty() {
        let _ = writeln!(out, "No vendor crate changed.\n");
        return Ok(());
    }
    semver::ensure_tool()?;
    let _ = writeln!(
        out,
        "| crate | verdict | cargo-semver-checks | `pub` declarations |\n|---|---|---|---|"
    );
    let mut details = String::new();
    for vendor in vendors {
        let manifest = format!("crates/{vendor}/Cargo.toml");
        let Some(package) = sides.after(&manifest).as_deref().and_then(package_name) else {
            let _ = writeln!(out, "| `crates/{vendor}` | **removed** | | |");
            continue;
        };
        let verdict = if sides.before(&manifest).is_none() {
            semver::Verdict::Unchecked("a new crate".into())
        } else {
            semver::check(sides.root, &package, sides.base)
        };
        let generated = format!("crates/{vendor}/src/generated.rs");
        let declarations = semver::Declarations::compare(
            &sides.before(&generated).unwrap_or_default(),
            &sides.after(&generated).unwrap_or_default(),
        );
        let _ = writeln!(
            out,
            "| `{package}` | {} | {} | {} added, {} removed or changed |",
            semver::summary(&verdict, &declarations),
            verdict.cell().replace('|', "\\|"),
            declarations.added.len(),
            declarations.removed.len(),
        );
        if let semver::Verdict::Breaking { checks, .. } = &verdict {
            let _ = writeln!(details, "`{package}` fails:");
            for check in checks {
                let _ = writeln!(details, "- {check}");
            }
            details.push('\n');
        }
        if !declarations.is_empty() {
            let _ = writeln!(
                details,
                "<details><summary><code>{package}</code>: <code>pub</code> declarations</summary>\n\n```diff\n{}```\n\n</details>\n",
                declarations.diff()
            );
        }
    }
    let _ = writeln!(out, "\n{details}");
    Ok(())
}

/// `name = "…"` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[package]")
        .find_map(|line| {
            let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
}

fn snapshot_section(sides: &Sides<'_>, changed: &[&String], out: &mut String) {
    let _ = writeln!(out, "## Snapshots\n");
    let snapshots: Vec<&&String> = changed.iter().filter(|p| p.ends_with(".snap")).collect();
    if snapshots.is_empty() {
        let _ = writeln!(out, "No snapshot changed.\n");
        return;
    }
    let mut groups: [(&str, Vec<String>); 3] = [
        ("Added", Vec::new()),
        ("Removed", Vec::new()),
        ("Changed", Vec::new()),
    ];
    for path in snapshots {
        let (before, after) = (sides.before(path), sides.after(path));
        let group = match (&before, &after) {
            (None, _) => 0,
            (_, None) => 1,
            _ => 2,
        };
        let diff = unified(
            before.as_deref().unwrap_or(""),
            after.as_deref().unwrap_or(""),
            path,
        );
        groups[group].1.push(format!(
            "<details><summary><code>{path}</code></summary>\n\n```diff\n{diff}```\n\n</details>\n"
        ));
    }
    for (title, entries) in groups {
        if !entries.is_empty() {
            let _ = writeln!(out, "### {title} ({})\n", entries.len());
            for entry in entries {
                let _ = writeln!(out, "{entry}");
            }
        }
    }
}

fn error_codes_section(sides: &Sides<'_>, out: &mut String) {
    let _ = writeln!(out, "## ERROR_CODES.md\n");
    let before = sides.before(ERROR_CODES).unwrap_or_default();
    let after = sides.after(ERROR_CODES).unwrap_or_default();
    if before == after {
        let _ = writeln!(out, "Unchanged.\n");
    } else {
        let _ = writeln!(
            out,
            "```diff\n{}```\n",
            unified(&before, &after, ERROR_CODES)
        );
    }
    let without_kind: Vec<&str> = after.lines().filter(|l| l.contains(NO_KIND)).collect();
    if without_kind.is_empty() {
        let _ = writeln!(out, "Every documented code has a kind.\n");
    } else {
        let _ = writeln!(
            out,
            "**Codes without a kind yet** (add each to the vendor's `CODE_KINDS` in the facade):\n"
        );
        for row in without_kind {
            let new = if before.lines().any(|l| l == row) {
                ""
            } else {
                " (new)"
            };
            let _ = writeln!(out, "- {}{new}", row.trim_matches('|').trim());
        }
        out.push('\n');
    }
}

fn generated_section(root: &Path, out: &mut String) {
    let _ = writeln!(out, "## Generated files\n");
    match codegen::run(root, codegen::Mode::Check) {
        Ok(report) if report.is_clean() => {
            let _ = writeln!(out, "Up to date with the specs.\n");
        }
        Ok(report) => {
            let _ = writeln!(out, "**Stale**: run `cargo xtask codegen` and commit:\n");
            for path in report.stale() {
                let path = path.strip_prefix(root).unwrap_or(path);
                let _ = writeln!(out, "- `{}`", path.display());
            }
            out.push('\n');
        }
        Err(error) => {
            let _ = writeln!(out, "**Code generation fails**: {error}\n");
        }
    }
}

/// A unified diff with three lines of context.
fn unified(before: &str, after: &str, path: &str) -> String {
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_the_working_tree_against_head() {
        assert_eq!(
            Options::parse(&[]).unwrap(),
            Options {
                base: "HEAD".into(),
                out: None
            }
        );
        assert_eq!(
            Options::parse(&["--base", "origin/main", "--out", "r.md"]).unwrap(),
            Options {
                base: "origin/main".into(),
                out: Some("r.md".into())
            }
        );
        assert!(Options::parse(&["--base"]).is_err());
        assert!(Options::parse(&["--bogus"]).is_err());
    }

    #[test]
    fn the_package_name_is_read_from_the_package_table() {
        let manifest = "[workspace]\nname = \"no\"\n[package]\nname = \"refresh-ekuaibao\"\nversion = \"0.1.0\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("refresh-ekuaibao"));
        assert_eq!(package_name("[dependencies]\nname = \"x\"\n"), None);
    }
}
