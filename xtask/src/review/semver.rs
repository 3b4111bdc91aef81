//! A vendor crate's public API change and its semver verdict, from cargo-semver-checks (installed on first use):
//! the crate in the working tree against the same crate at the base revision.

use std::path::Path;
use std::process::Command;

/// What cargo-semver-checks concluded for one crate.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No check failed: a minor or patch release is enough. The tool's summary line.
    Compatible(String),
    /// Some check failed: the release must be a new major version (0.x: a new minor). The failed checks.
    Breaking {
        summary: String,
        checks: Vec<String>,
    },
    /// The tool could not compare (no such crate at the base, a build that fails…): why, in its last lines.
    Unchecked(String),
}

impl Verdict {
    /// One table cell.
    pub fn cell(&self) -> String {
        match self {
            Verdict::Compatible(summary) => format!("compatible: {summary}"),
            Verdict::Breaking { summary, .. } => format!("**breaking**: {summary}"),
            Verdict::Unchecked(why) => format!("not checked: {why}"),
        }
    }
}

/// The `pub` declarations (one per line, as rustfmt writes them) that generated code gained and lost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Declarations {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Declarations {
    pub fn compare(before: &str, after: &str) -> Declarations {
        let read = |text: &str| -> Vec<String> {
            let mut lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|line| line.starts_with("pub "))
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        let (before, after) = (read(before), read(after));
        let missing = |from: &[String], other: &[String]| -> Vec<String> {
            let mut other = other.to_vec();
            from.iter()
                .filter(|line| match other.iter().position(|o| o == *line) {
                    Some(at) => {
                        other.remove(at);
                        false
                    }
                    None => true,
                })
                .cloned()
                .collect()
        };
        Declarations {
            added: missing(&after, &before),
            removed: missing(&before, &after),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }

    /// `-` and `+` lines.
    pub fn diff(&self) -> String {
        let removed = self.removed.iter().map(|l| format!("- {l}\n"));
        let added = self.added.iter().map(|l| format!("+ {l}\n"));
        removed.chain(added).collect()
    }
}

/// The verdict for a reviewer: breaking if the tool says so or a `pub` declaration was removed or changed.
pub fn summary(verdict: &Verdict, declarations: &Declarations) -> &'static str {
    match verdict {
        Verdict::Breaking { .. } => "**breaking** (major)",
        _ if !declarations.removed.is_empty() => "**breaking** (major)",
        Verdict::Compatible(_) if declarations.added.is_empty() => "compatible (patch)",
        Verdict::Compatible(_) => "compatible (minor)",
        Verdict::Unchecked(_) if declarations.added.is_empty() => "unknown",
        Verdict::Unchecked(_) => "additions only, not checked",
    }
}

/// The cargo-semver-checks release the report is made with (one that reads this toolchain's rustdoc JSON).
pub const TOOL_VERSION: &str = "0.51.0";

/// Installs cargo-semver-checks [`TOOL_VERSION`] unless `cargo semver-checks --version` names it.
pub fn ensure_tool() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["semver-checks", "--version"])
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .any(|word| word == TOOL_VERSION)
        });
    if present {
        return Ok(());
    }
    eprintln!(
        "cargo-semver-checks {TOOL_VERSION} is not installed; installing it (cargo install --locked):"
    );
    let status = Command::new("cargo")
        .args([
            "install",
            "cargo-semver-checks",
            "--locked",
            "--version",
            TOOL_VERSION,
        ])
        .status()
        .map_err(|e| format!("cargo install cargo-semver-checks: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo install cargo-semver-checks: {status}"))
    }
}

/// Compares `package` (in the workspace at `root`) with itself at `base`.
pub fn check(root: &Path, package: &str, base: &str) -> Verdict {
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["semver-checks", "check-release", "--color", "never"])
        .args(["--package", package, "--baseline-rev", base])
        .output();
    match output {
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            read(output.status.success(), &text)
        }
        Err(error) => Verdict::Unchecked(format!("cargo semver-checks did not run: {error}")),
    }
}

/// The verdict in the tool's output: its `Summary` line, and the `--- failure <check>: <what> ---` headings.
fn read(success: bool, output: &str) -> Verdict {
    let summary = output
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("Summary "))
        .map(str::to_owned);
    let checks: Vec<String> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("--- failure "))
        .map(|line| line.trim_end_matches('-').trim().to_owned())
        .collect();
    match (success, summary) {
        (true, Some(summary)) => Verdict::Compatible(summary),
        (false, Some(summary)) if !checks.is_empty() => Verdict::Breaking { summary, checks },
        _ => {
            let tail: Vec<&str> = output
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
            Verdict::Unchecked(tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_run_is_compatible_with_its_summary() {
        let output = "     Checking refresh-ekuaibao v0.1.0 -> v0.1.0 (no change)\n\
                      Checked [   0.020s] 240 checks: 240 pass, 12 skip\n\
                      Summary no semver update required\n";
        assert_eq!(
            read(true, output),
            Verdict::Compatible("no semver update required".into())
        );
    }

    #[test]
    fn failed_checks_make_it_breaking_and_are_named() {
        let output = "Checked [   0.020s] 240 checks: 238 pass, 2 fail, 0 warn, 12 skip\n\n\
             --- failure constructible_struct_adds_field: externally-constructible struct adds field ---\n\n\
             Description:\n...\n\
             --- failure method_parameter_count_changed: pub method parameter count changed ---\n\
             Summary semver requires new major version: 2 major and 0 minor checks failed\n";
        assert_eq!(
            read(false, output),
            Verdict::Breaking {
                summary: "semver requires new major version: 2 major and 0 minor checks failed"
                    .into(),
                checks: vec![
                    "constructible_struct_adds_field: externally-constructible struct adds field"
                        .into(),
                    "method_parameter_count_changed: pub method parameter count changed".into(),
                ],
            }
        );
    }

    #[test]
    fn a_changed_declaration_is_one_removed_and_one_added_and_makes_it_breaking() {
        let before = "pub struct A {\n    pub code: Option<i32>,\n    pub name: String,\n}\n";
        let after = "pub struct A {\n    pub code: Option<Code>,\n    pub name: String,\n    pub more: bool,\n}\n";
        let declarations = Declarations::compare(before, after);
        assert_eq!(declarations.removed, ["pub code: Option<i32>,"]);
        assert_eq!(
            declarations.added,
            ["pub code: Option<Code>,", "pub more: bool,"]
        );
        assert_eq!(
            declarations.diff(),
            "- pub code: Option<i32>,\n+ pub code: Option<Code>,\n+ pub more: bool,\n"
        );
        let compatible = Verdict::Compatible("no semver update required".into());
        assert_eq!(summary(&compatible, &declarations), "**breaking** (major)");
        let only_added = Declarations::compare(before, &format!("{before}pub fn x() {{}}\n"));
        assert_eq!(summary(&compatible, &only_added), "compatible (minor)");
        assert_eq!(
            summary(&compatible, &Declarations::compare(before, before)),
            "compatible (patch)"
        );
    }

    /// A failed run that names no failed check did not compare the APIs: no verdict is made up from its summary.
    #[test]
    fn a_failed_run_without_failed_checks_is_not_a_breaking_verdict() {
        let output = "Summary no semver update required\nerror: rustdoc failed for the baseline\n";
        assert!(
            matches!(read(false, output), Verdict::Unchecked(_)),
            "{:?}",
            read(false, output)
        );
    }

    #[test]
    fn each_verdict_reads_as_one_cell_and_unchecked_ones_say_what_is_known() {
        assert_eq!(
            Verdict::Compatible("fine".into()).cell(),
            "compatible: fine"
        );
        let breaking = Verdict::Breaking {
            summary: "major".into(),
            checks: vec!["x".into()],
        };
        assert_eq!(breaking.cell(), "**breaking**: major");
        let unchecked = Verdict::Unchecked("no baseline".into());
        assert_eq!(unchecked.cell(), "not checked: no baseline");
        let before = "pub struct A {\n    pub a: i32,\n}\n";
        let same = Declarations::compare(before, before);
        let added = Declarations::compare(before, &format!("{before}pub fn f() {{}}\n"));
        let removed = Declarations::compare(before, "pub struct A {\n}\n");
        assert!(same.is_empty() && !added.is_empty() && !removed.is_empty());
        assert_eq!(summary(&unchecked, &same), "unknown");
        assert_eq!(summary(&unchecked, &added), "additions only, not checked");
        assert_eq!(summary(&unchecked, &removed), "**breaking** (major)");
        assert_eq!(summary(&breaking, &same), "**breaking** (major)");
    }

    #[test]
    fn a_run_that_could_not_compare_says_why() {
        let output = "error: package `refresh-new` not found in baseline\n";
        assert_eq!(
            read(false, output),
            Verdict::Unchecked("error: package `refresh-new` not found in baseline".into())
        );
    }
}
