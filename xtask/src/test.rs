//! `cargo xtask test`: sets up what the tests need, then runs every test and insta's strict snapshot check.
//!
//! 1. PostgreSQL's server binaries (`initdb`, `pg_ctl`), for `refresh-postgres`'s throwaway clusters: `PG_BIN`, then
//!    Debian's `/usr/lib/postgresql/<version>/bin` (newest first), then the `PATH`. Missing, and root on Debian or
//!    Ubuntu: installs the `postgresql` package with apt, saying so. Otherwise it stops and says what to run.
//! 2. `cargo-insta` at the version of `insta` in `Cargo.lock`, and the cargo-semver-checks that `cargo xtask
//!    review` (and its test) uses, each installed with `cargo install` if missing.
//! 3. `cargo test --workspace --locked --no-run` (the build, with the lock file as committed), then
//!    `cargo insta test --check --unreferenced=reject` (every test, once; any snapshot that differs, is pending
//!    or is no longer referenced fails the run).
//!
//! Plain `cargo test` needs none of this wherever a server is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Where the server binaries were found, and how.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub bin: PathBuf,
    pub from: &'static str,
}

/// What the machine offers, read once, so that finding the server is a pure function (tested below).
pub struct Machine {
    pub pg_bin: Option<PathBuf>,
    pub debian_root: PathBuf,
    pub path: Vec<PathBuf>,
}

impl Machine {
    fn this_one() -> Machine {
        Machine {
            pg_bin: std::env::var_os("PG_BIN").map(PathBuf::from),
            debian_root: PathBuf::from("/usr/lib/postgresql"),
            path: std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect())
                .unwrap_or_default(),
        }
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("pg_ctl").is_file() && dir.join("initdb").is_file()
}

/// The server binaries, in the order the tests' harness looks for them (`tests/support` of refresh-postgres).
pub fn find_server(machine: &Machine) -> Result<Option<Found>, String> {
    if let Some(bin) = &machine.pg_bin {
        return if has_server(bin) {
            Ok(Some(Found {
                bin: bin.clone(),
                from: "PG_BIN",
            }))
        } else {
            Err(format!(
                "PG_BIN is {}, which holds no initdb and pg_ctl",
                bin.display()
            ))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&machine.debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(Some(Found {
            bin,
            from: "Debian's postgresql package",
        }));
    }
    Ok(machine
        .path
        .iter()
        .find(|dir| has_server(dir))
        .map(|dir| Found {
            bin: dir.clone(),
            from: "PATH",
        }))
}

/// `ID` and `ID_LIKE` of `/etc/os-release` name Debian or Ubuntu.
fn debian_like(os_release: &str) -> bool {
    os_release.lines().any(|line| {
        let value = match line.split_once('=') {
            Some(("ID" | "ID_LIKE", value)) => value.trim_matches('"'),
            _ => return false,
        };
        value
            .split_whitespace()
            .any(|id| id == "debian" || id == "ubuntu")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| is_uid_zero(&String::from_utf8_lossy(&output.stdout)))
}

/// Whether `id -u` printed root's uid.
fn is_uid_zero(id_output: &str) -> bool {
    id_output.trim() == "0"
}

/// What to tell someone whose machine has no server and that this command cannot set up.
fn how_to_install(debian: bool, root: bool) -> String {
    let install = if debian && !root {
        "  sudo apt-get install -y --no-install-recommends postgresql\n"
    } else {
        "  Debian, Ubuntu:  apt-get install -y --no-install-recommends postgresql   (as root)\n  \
           Fedora, RHEL:    dnf install -y postgresql-server\n  \
           macOS:           brew install postgresql@17\n"
    };
    format!(
        "PostgreSQL's server (initdb, pg_ctl) was not found in PG_BIN, /usr/lib/postgresql/*/bin or the PATH.\n\
         refresh-postgres's tests start throwaway clusters of their own, so they need it. Install it:\n\
         {install}\
         or point PG_BIN at the directory that holds initdb and pg_ctl, then run `cargo xtask test` again.\n\
         (DATABASE_URL=\"host=... user=... dbname=...\" runs most of those tests on a server of yours, but the ones\n\
         that restart a server or set up TLS still need the binaries.)"
    )
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}").replace('"', "");
    println!("==> {shown}");
    let status = command
        .status()
        .map_err(|error| format!("{shown}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

fn ensure_server() -> Result<Found, String> {
    let machine = Machine::this_one();
    if let Some(found) = find_server(&machine)? {
        return Ok(found);
    }
    let debian = std::fs::read_to_string("/etc/os-release").is_ok_and(|text| debian_like(&text));
    let root = is_root();
    if !(debian && root) {
        return Err(how_to_install(debian, root));
    }
    println!(
        "PostgreSQL's server is not installed; installing Debian's `postgresql` package with apt \
         (the tests start throwaway clusters of their own; no cluster of the package is used):"
    );
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command)
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "postgresql",
    ])?;
    if let Some(found) = find_server(&machine)? {
        return Ok(found);
    }
    // Installed before, and its files gone since: the versioned server package is put back.
    for package in installed_server_packages() {
        println!("`{package}` is installed but its binaries are missing; reinstalling it:");
        apt(&["install", "-y", "-qq", "--reinstall", &package])?;
    }
    find_server(&machine)?.ok_or_else(|| {
        format!(
            "apt-get installed `postgresql`, but there is still no initdb and pg_ctl under \
             /usr/lib/postgresql/*/bin.\n\n{}",
            how_to_install(debian, root)
        )
    })
}

/// The versioned server packages (`postgresql-17`, ...) dpkg has installed.
fn installed_server_packages() -> Vec<String> {
    let Ok(output) = Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package} ${db:Status-Status}\n",
            "postgresql-[0-9]*",
        ])
        .output()
    else {
        return Vec::new();
    };
    server_packages(&String::from_utf8_lossy(&output.stdout))
}

/// The installed `postgresql-<major>` packages in dpkg-query's `${Package} ${db:Status-Status}` lines.
fn server_packages(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_suffix(" installed"))
        .filter(|package| {
            package
                .strip_prefix("postgresql-")
                .is_some_and(|major| !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect()
}

/// The version of `insta` in `Cargo.lock`: the one cargo-insta must match.
fn insta_version(root: &Path) -> Result<String, String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|error| format!("Cargo.lock: {error}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"insta\""
            && let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    Err("Cargo.lock has no `insta` package".into())
}

fn ensure_cargo_insta(root: &Path) -> Result<(), String> {
    let version = insta_version(root)?;
    let installed = Command::new("cargo")
        .args(["insta", "--version"])
        .output()
        .is_ok_and(|output| reports_version(&String::from_utf8_lossy(&output.stdout), &version));
    if installed {
        return Ok(());
    }
    println!(
        "cargo-insta {version} (the version of insta in Cargo.lock) is not installed; installing it:"
    );
    run(Command::new("cargo").args(["install", "cargo-insta", "--locked", "--version", &version]))
}

/// Whether `cargo insta --version` printed `version` ("cargo-insta 1.49.0").
fn reports_version(output: &str, version: &str) -> bool {
    output.split_whitespace().any(|word| word == version)
}

/// `--workspace`, unless `args` name packages (`-p x`, `--package x`, `-px`, `--package=x`).
fn scope(args: &[&str]) -> Vec<&'static str> {
    let names_a_package = args
        .iter()
        .any(|arg| arg.starts_with("-p") || arg.starts_with("--package"));
    if names_a_package {
        Vec::new()
    } else {
        vec!["--workspace"]
    }
}

/// `args`: extra options for `cargo insta test` (e.g. `-p refresh-postgres`); `--workspace` unless a package is
/// named.
pub fn run_all(root: &Path, args: &[&str]) -> ExitCode {
    let result = (|| {
        let server = ensure_server()?;
        println!(
            "PostgreSQL's server: {} (from {})",
            server.bin.display(),
            server.from
        );
        ensure_cargo_insta(root)?;
        crate::review::ensure_semver_checks()?;
        let scope = scope(args);
        // The tests' harness looks in the same places; PG_BIN makes it use the very binaries found here.
        let cargo = |args: &[&str]| {
            let mut command = Command::new("cargo");
            command
                .current_dir(root)
                .args(args)
                .env("PG_BIN", &server.bin);
            command
        };
        run(&mut cargo(
            &[&["test", "--locked", "--no-run"], &scope[..], args].concat(),
        ))?;
        run(&mut cargo(
            &[
                &[
                    "insta",
                    "test",
                    "--test-runner",
                    "cargo-test",
                    "--no-quiet",
                    "--check",
                    "--unreferenced=reject",
                ],
                &scope[..],
                args,
            ]
            .concat(),
        ))
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_in(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pg_ctl"), "").unwrap();
        std::fs::write(dir.join("initdb"), "").unwrap();
    }

    #[test]
    fn the_server_is_found_in_pg_bin_then_the_newest_debian_version_then_the_path() {
        let root = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        let (debian, on_path, pg_bin) = (
            root.join("debian"),
            root.join("path-bin"),
            root.join("pg-bin"),
        );
        server_in(&debian.join("9").join("bin"));
        server_in(&debian.join("17").join("bin"));
        server_in(&debian.join("15").join("bin"));
        std::fs::create_dir_all(debian.join("18").join("bin")).unwrap(); // no binaries: skipped
        server_in(&on_path);
        server_in(&pg_bin);
        let machine = |pg_bin: Option<&Path>, debian: &Path| Machine {
            pg_bin: pg_bin.map(Path::to_path_buf),
            debian_root: debian.to_path_buf(),
            path: vec![root.join("elsewhere"), on_path.clone()],
        };
        assert_eq!(
            find_server(&machine(Some(&pg_bin), &debian)).unwrap(),
            Some(Found {
                bin: pg_bin.clone(),
                from: "PG_BIN"
            })
        );
        assert_eq!(
            find_server(&machine(None, &debian)).unwrap().unwrap().bin,
            debian.join("17").join("bin")
        );
        let nowhere = root.join("nowhere");
        assert_eq!(
            find_server(&machine(None, &nowhere)).unwrap().unwrap(),
            Found {
                bin: on_path.clone(),
                from: "PATH"
            }
        );
        let empty = Machine {
            pg_bin: None,
            debian_root: nowhere.clone(),
            path: vec![root.join("elsewhere")],
        };
        assert_eq!(find_server(&empty).unwrap(), None);
        let wrong = find_server(&machine(Some(&nowhere), &debian)).unwrap_err();
        assert!(wrong.contains("holds no initdb and pg_ctl"), "{wrong}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_is_a_server_only_with_both_initdb_and_pg_ctl() {
        let root = std::env::temp_dir().join(format!("xtask-half-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("pg_ctl"), "").unwrap();
        assert!(!has_server(&root));
        std::fs::write(root.join("initdb"), "").unwrap();
        assert!(has_server(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn only_installed_versioned_server_packages_are_reinstalled() {
        let listing = "postgresql-15 installed\npostgresql-15-jit-llvm installed\npostgresql-9.1 not-installed\n\
                       postgresql-16 not-installed\npostgresql- installed\npostgresql-17 installed\n";
        assert_eq!(server_packages(listing), ["postgresql-15", "postgresql-17"]);
        assert!(server_packages("").is_empty());
    }

    #[test]
    fn root_and_the_insta_version_are_read_from_command_output() {
        assert!(is_uid_zero("0\n"));
        assert!(!is_uid_zero("1000\n"));
        assert!(!is_uid_zero("10\n"));
        assert!(reports_version("cargo-insta 1.49.0\n", "1.49.0"));
        assert!(!reports_version("cargo-insta 1.49.1\n", "1.49.0"));
    }

    #[test]
    fn the_whole_workspace_is_tested_unless_packages_are_named() {
        assert_eq!(scope(&[]), ["--workspace"]);
        assert_eq!(scope(&["--", "--nocapture"]), ["--workspace"]);
        for named in [
            &["-p", "xtask"][..],
            &["-pxtask"],
            &["--package", "x"],
            &["--package=x"],
        ] {
            assert!(scope(named).is_empty(), "{named:?}");
        }
    }

    #[test]
    fn debian_and_ubuntu_are_recognised_by_os_release() {
        assert!(debian_like(
            "PRETTY_NAME=\"Debian GNU/Linux 13\"\nID=debian\n"
        ));
        assert!(debian_like("ID=ubuntu\nID_LIKE=debian\n"));
        assert!(debian_like("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"));
        assert!(!debian_like("ID=fedora\nID_LIKE=\"rhel centos\"\n"));
        assert!(!debian_like("NAME=debian\n"));
    }

    #[test]
    fn the_advice_names_the_exact_command() {
        assert!(
            how_to_install(true, false)
                .contains("sudo apt-get install -y --no-install-recommends postgresql\n")
        );
        let elsewhere = how_to_install(false, false);
        assert!(elsewhere.contains("dnf install -y postgresql-server"));
        assert!(elsewhere.contains("PG_BIN"));
    }

    #[test]
    fn the_insta_version_comes_from_the_lock_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let version = insta_version(root).unwrap();
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        assert!(lock.contains(&format!("name = \"insta\"\nversion = \"{version}\"")));
        assert!(version.split('.').count() == 3, "{version}");
    }
}
