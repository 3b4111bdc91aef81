//! A real PostgreSQL server for the tests: a throwaway cluster (`initdb` in a temporary directory, `pg_ctl start`
//! on a free loopback port), stopped when dropped, or the server `DATABASE_URL` names, with a fresh schema per
//! test. A missing server is a failure, never a skipped test.

#![allow(dead_code)] // Each test binary uses part of it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use refresh_postgres::Keyring;

/// A database for one test.
pub struct Database {
    /// A `key=value` connection string, for this process and its children.
    pub url: String,
    cluster: Option<Cluster>,
}

impl Database {
    /// `DATABASE_URL`'s server, with a schema of this test's own; else a cluster of this test's own.
    pub fn new() -> Database {
        match std::env::var("DATABASE_URL") {
            Ok(url) => Database::external(&url),
            Err(_) => Database::throwaway(),
        }
    }

    /// Always a cluster of this test's own (to restart it, or read its files).
    pub fn throwaway() -> Database {
        let cluster = Cluster::start();
        Database {
            url: cluster.url(),
            cluster: Some(cluster),
        }
    }

    /// A schema of its own on the server at `url`.
    pub fn external(url: &str) -> Database {
        let schema = format!("refresh_kit_test_{:016x}", fastrand::u64(..));
        psql(url, &format!("CREATE SCHEMA {schema}"));
        let config: tokio_postgres::Config =
            url.parse().expect("DATABASE_URL is a connection string");
        let mut parts = Vec::new();
        for host in config.get_hosts() {
            if let tokio_postgres::config::Host::Tcp(host) = host {
                parts.push(format!("host={host}"));
            }
        }
        if let Some(port) = config.get_ports().first() {
            parts.push(format!("port={port}"));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={user}"));
        }
        if let Some(password) = config.get_password() {
            parts.push(format!("password={}", String::from_utf8_lossy(password)));
        }
        if let Some(dbname) = config.get_dbname() {
            parts.push(format!("dbname={dbname}"));
        }
        parts.push(format!("options='-c search_path={schema}'"));
        Database {
            url: parts.join(" "),
            cluster: None,
        }
    }

    /// A plain connection of the test's own, to look at or change what the store wrote.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("a throwaway cluster")
    }
}

/// Runs `sql` with psql (postgresql-client) on the server at `url`; its output, trimmed.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-XAtv", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The test key: any 32 bytes will do.
pub fn keys() -> Keyring {
    Keyring::new("test-key-1", &[42; 32]).unwrap()
}

/// A PostgreSQL cluster in a temporary directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    settings: Vec<String>,
}

/// What a cluster starts with beyond the defaults.
#[derive(Default)]
pub struct Setup {
    /// Files written into the data directory (mode 0600, the server's user's), e.g. a certificate and its key.
    pub files: Vec<(&'static str, String)>,
    /// `pg_hba.conf` in place of initdb's.
    pub hba: Option<String>,
    /// Server settings (`name=value`), e.g. `ssl=on`.
    pub settings: Vec<String>,
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(Setup::default())
    }

    pub fn start_with(setup: Setup) -> Cluster {
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("refresh-kit-pg")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if running_as_root() {
            // initdb refuses root: the cluster belongs to Debian's `postgres` user.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        let cluster = Cluster {
            dir,
            bin,
            port,
            settings: setup.settings,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let mut files = setup.files;
        files.extend(setup.hba.map(|hba| ("pg_hba.conf", hba)));
        for (name, contents) in files {
            let path = cluster.data_dir().join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if running_as_root() {
                run(Command::new("chown").arg("postgres:postgres").arg(&path));
            }
        }
        cluster.start_server();
        cluster
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn data(&self) -> String {
        self.data_dir().display().to_string()
    }

    pub fn start_server(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=32MB",
            self.port,
            self.dir.path().display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server as a crash would (no shutdown checkpoint: it recovers from its log at start).
    pub fn stop_server(&self) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        run(command.args(args));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `PG_BIN`, else the newest of Debian's `/usr/lib/postgresql/<version>/bin`, else the directory of `pg_ctl` on
/// the `PATH`.
fn server_binaries() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| Path::new(dir).join("pg_ctl").exists())
        .expect(
            "PostgreSQL's server (Debian's `postgresql` package) is installed; .ci/run installs it",
        )
}
