//! `cargo xtask review` on a scratch copy of the repository: a spec edit (a new answer field, a new error code, a
//! removed parameter), regenerated, and a hand-made snapshot change, give the report's sections and the vendor
//! crate's semver verdict.

use std::path::Path;
use std::process::Command;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("XTASK_ROOT", dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_spec_edit_gives_its_sections_and_a_breaking_verdict() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("repo");
    let copy_str = copy.to_str().unwrap();
    run(
        scratch.path(),
        "git",
        &["clone", "--quiet", root.to_str().unwrap(), copy_str],
    );
    // The clone is the last commit; the files this test reads must be as the working tree has them.
    for path in [
        "specs/ekuaibao.yaml",
        "crates/refresh-facade/ERROR_CODES.md",
    ] {
        assert_eq!(
            std::fs::read_to_string(copy.join(path)).unwrap(),
            std::fs::read_to_string(root.join(path)).unwrap(),
            "{path}: commit it before running this test"
        );
    }

    let spec = copy.join("specs/ekuaibao.yaml");
    edit(
        &spec,
        "        corporationId:\n          type: string\n",
        "        corporationId:\n          type: string\n          description: The company id.\n        \
         tenantName:\n          type: string\n",
    );
    edit(
        &spec,
        "              - { code: 403, name: UNAUTHORIZED,",
        "              - { code: 405, name: METHOD_NOT_ALLOWED, meaning: the method is not allowed }\n              \
         - { code: 403, name: UNAUTHORIZED,",
    );
    edit(
        &spec,
        "        - $ref: '#/components/parameters/PowerCode'\n      responses:\n        '200':\n          \
         $ref: '#/components/responses/Tokens'\n        '403':",
        "      responses:\n        '200':\n          $ref: '#/components/responses/Tokens'\n        '403':",
    );
    run(&copy, XTASK, &["codegen"]);
    // The contributor renders ERROR_CODES.md (the facade's `error_codes_doc_is_current` with UPDATE_ERROR_CODES):
    // the new code, which has no kind yet, is its row without one.
    edit(
        &copy.join("crates/refresh-facade/ERROR_CODES.md"),
        "| ekuaibao | errorCode | 403 |",
        "| ekuaibao | errorCode | 405 | **none** (add it to `CODE_KINDS`) | the method is not allowed | the refresh \
         page (刷新授权(指定有效时间)) |\n| ekuaibao | errorCode | 403 |",
    );
    // Snapshots: one changed, one removed, one added.
    let snapshots = copy.join("tests/wire/snapshots");
    let changed = snapshots.join("ekuaibao__refresh_token__request__parameters.snap");
    edit(&changed, "method: POST", "method: PUT");
    let removed = "ekuaibao__get_access_token__request__documented_shape.snap";
    std::fs::remove_file(snapshots.join(removed)).unwrap();
    std::fs::write(
        snapshots.join("ekuaibao__new.snap"),
        "---\nsource: x\n---\nnew\n",
    )
    .unwrap();

    let report = run(&copy, XTASK, &["review", "--base", "HEAD"]);
    let section = |title: &str| -> String {
        let start = report
            .find(&format!("## {title}\n"))
            .unwrap_or_else(|| panic!("no section {title}:\n{report}"));
        let rest = &report[start + title.len() + 4..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
    };

    let specs = section("Specs");
    for line in [
        "- `refresh_token_with_validity` answer HTTP 200: field added: `value.tenantName` (string)",
        "- **`refresh_token_with_validity`: parameter removed**: `query powerCode`",
        "- error code added: `errorCode` = `405` (the method is not allowed)",
    ] {
        assert!(specs.lines().any(|l| l == line), "no {line:?} in\n{specs}");
    }

    let crates = section("Vendor crates' public API");
    let row = crates
        .lines()
        .find(|l| l.starts_with("| `refresh-ekuaibao` |"))
        .unwrap_or_else(|| panic!("{crates}"));
    assert!(row.contains("**breaking**"), "{crates}");
    assert!(
        crates.contains("refresh-ekuaibao` fails:"),
        "the failed checks are listed:\n{crates}"
    );

    let snapshots = section("Snapshots");
    for heading in ["### Added (1)", "### Removed (1)", "### Changed (1)"] {
        assert!(snapshots.contains(heading), "no {heading} in\n{snapshots}");
    }
    assert!(
        snapshots.contains("-method: POST\n+method: PUT"),
        "the change's diff:\n{snapshots}"
    );

    let codes = section("ERROR_CODES.md");
    assert!(
        codes.contains("+| ekuaibao | errorCode | 405 |"),
        "the new row:\n{codes}"
    );
    assert!(
        codes.contains("**Codes without a kind yet**")
            && codes
                .lines()
                .any(|l| l.contains("405") && l.ends_with("(new)")),
        "{codes}"
    );
    assert!(
        section("Generated files").contains("Up to date"),
        "{report}"
    );

    // The same tree against itself changes nothing.
    run(&copy, "git", &["add", "-A"]);
    run(
        &copy,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "edit",
        ],
    );
    let quiet = run(&copy, XTASK, &["review"]);
    for line in [
        "No spec changed.",
        "No vendor crate changed.",
        "No snapshot changed.",
        "Unchanged.",
    ] {
        assert!(quiet.contains(line), "no {line:?} in\n{quiet}");
    }
}
