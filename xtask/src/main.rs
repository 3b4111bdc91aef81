//! Project automation, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! Deliberately small: no argument-parsing crate and no dependency on any project crate, so that
//! `cargo xtask` stays quick to build and can regenerate crates that do not compile.

mod codegen;
mod invariants;
mod review;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen            regenerate crates/<vendor>/src/generated.rs from specs/<vendor>.yaml,
                     scaffolding any vendor crate that does not exist yet
  codegen --check    write nothing; print a diff and fail if a generated file is stale or missing
  test [options]     set up what the tests need (PostgreSQL's server, installed with apt when root
                     on Debian or Ubuntu; cargo-insta), then run every test and insta's strict check;
                     options go to `cargo insta test` (e.g. `-p refresh-postgres`)
  review [--base REF] [--out FILE]
                     a Markdown report of what the working tree changes for users, against REF
                     (default HEAD): specs, each vendor crate's semver verdict (cargo-semver-checks,
                     installed if missing), snapshots with their diffs, ERROR_CODES.md, stale files
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mode = match args.as_slice() {
        ["test", options @ ..] => return test::run_all(&codegen::workspace_root(), options),
        ["review", options @ ..] => {
            return match review::Options::parse(options) {
                Ok(options) => review::run(&codegen::workspace_root(), &options),
                Err(error) => {
                    eprintln!("error: {error}\n{USAGE}");
                    ExitCode::from(2)
                }
            };
        }
        ["codegen"] => codegen::Mode::Write,
        ["codegen", "--check"] => codegen::Mode::Check,
        ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match codegen::run(&codegen::workspace_root(), mode) {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
