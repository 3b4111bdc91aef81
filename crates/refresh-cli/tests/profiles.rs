//! `refresh profiles add|list|remove` and `refresh check`, the binary end to end on a scratch profiles file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_refresh");

/// Runs the binary with only the profiles file and the state directory set: exit code, stdout, stderr.
fn refresh(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("REFRESH_CONFIG", dir.join("config/config.toml"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn profiles_are_added_listed_and_removed_keeping_the_files_comments_and_check_validates_them() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let file = dir.join("config/config.toml");

    // No file yet: the error says how to make one.
    let (code, _, stderr) = refresh(dir, &["token", "erp"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("refresh profiles add"), "{stderr}");
    let (code, stdout, _) = refresh(dir, &["check"]);
    assert_eq!(code, 3);
    assert!(stdout.contains("refresh profiles add"), "{stdout}");

    let (code, _, stderr) = refresh(
        dir,
        &[
            "profiles",
            "add",
            "erp",
            "--vendor",
            "ekuaibao",
            "--app-key",
            "my-app",
            "--validity-days",
            "7",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written: toml::Table = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        written["profiles"]["erp"]["vendor"].as_str(),
        Some("ekuaibao")
    );
    assert_eq!(
        written["profiles"]["erp"]["validity_days"].as_integer(),
        Some(7)
    );
    assert_eq!(
        written["profiles"]["erp"]["login"]["app_key"].as_str(),
        Some("my-app")
    );

    // A person's comment survives the next edit.
    let with_comment = format!(
        "# kept by hand\n{}",
        std::fs::read_to_string(&file).unwrap()
    );
    std::fs::write(&file, with_comment).unwrap();
    let (code, _, stderr) = refresh(
        dir,
        &[
            "profiles", "add", "hpc", "--vendor", "sugon-ac", "--user", "u", "--org-id", "o",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("# kept by hand\n")
    );

    // Refused, and the file is left as it was: a name taken, a name the other commands refuse.
    let before = std::fs::read_to_string(&file).unwrap();
    for args in [
        &["profiles", "add", "erp", "--vendor", "sugon-ac"][..],
        &["profiles", "add", "_derived", "--vendor", "sugon-ac"][..],
    ] {
        let (code, _, stderr) = refresh(dir, args);
        assert_eq!(code, 3, "{args:?}: {stderr}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "{args:?}");
    }

    let (code, stdout, _) = refresh(dir, &["profiles", "list", "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["profile"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["erp", "hpc"]);

    let (code, stdout, stderr) = refresh(dir, &["check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("ok      the token store answers"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok      profile erp (ekuaibao): settings"),
        "{stdout}"
    );

    // Readable by others, and a sink whose directory does not exist: two errors.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sink = format!(
        "{}\n[[profiles.erp.sinks]]\npath = {:?}\nformat = \"token\"\n",
        std::fs::read_to_string(&file).unwrap(),
        dir.join("missing/erp.token")
    );
    std::fs::write(&file, sink).unwrap();
    let (code, stdout, _) = refresh(dir, &["check"]);
    assert_eq!(code, 3, "{stdout}");
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 2, "{stdout}");
    assert!(errors[0].contains("chmod 600"), "{stdout}");
    assert!(errors[1].contains("missing"), "{stdout}");

    let (code, _, stderr) = refresh(dir, &["profiles", "remove", "hpc"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = refresh(dir, &["profiles", "list"]);
    assert!(
        stdout.contains("erp") && !stdout.contains("hpc"),
        "{stdout}"
    );
    let (code, _, _) = refresh(dir, &["profiles", "remove", "hpc"]);
    assert_eq!(code, 3);
}
