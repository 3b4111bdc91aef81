//! `refresh profiles add|list|remove`: the profiles file written for a newcomer, who should not have to hand-write
//! TOML. Edits keep the file's comments and layout (toml_edit); a new file is created with mode 0600, since it may
//! come to hold app secrets. No secret is ever a flag here: secrets stay in the environment.

use std::path::Path;
use std::process::ExitCode;

use refresh_facade::Vendor;
use toml_edit::{DocumentMut, Item, Table, value};

use crate::profiles::ConfigArgs;
use crate::{exit, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Add a profile (the file is created, mode 0600, if it does not exist).
    #[command(after_help = "\
Examples:
  refresh profiles add erp --vendor ekuaibao --app-key my-app --validity-days 7
  refresh profiles add hpc --vendor sugon-ac --user slurmtest --org-id 6048ce7b
  refresh profiles add shop --vendor misa-cukcuk --company-code my-shop --app-id CUKCUKOpenPlatform
Then log in (`refresh login NAME`, with the login's secret in the environment) or let `refresh token` and
`refresh agent` do it for the vendors that log in by themselves.")]
    Add(Box<Add>),
    /// List the profiles: name, vendor, sinks, readers.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile from the file. Its stored tokens are kept (log in again to replace them).
    Remove { name: String },
}

/// A profile's settings, as flags: the vendor's (as its configuration reads them) and the login's. Each one is
/// written only if given.
#[derive(Debug, clap::Args)]
struct Add {
    name: String,
    #[arg(long)]
    vendor: Vendor,
    /// The vendor's base URL [default: the vendor's documented host].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// iSolarCloud app key (its secret key comes from APP_SECRET); Ekuaibao appKey (a login setting).
    #[arg(long)]
    app_key: Option<String>,
    /// MISA CukCuk company code.
    #[arg(long)]
    company_code: Option<String>,
    /// WeChat: the third-party platform's appid and the authorizer's.
    #[arg(long)]
    component_appid: Option<String>,
    #[arg(long)]
    authorizer_appid: Option<String>,
    /// Sugon AC: the compute region whose token a login returns.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Ekuaibao: the validity to ask for, in days.
    #[arg(long)]
    validity_days: Option<u32>,
    /// iSolarCloud: the redirect URI of the authorization.
    #[arg(long)]
    redirect_uri: Option<String>,
    /// Sugon AC: the user and organization of the login.
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    org_id: Option<String>,
    /// MISA CukCuk: the OpenPlatform app id, and the connection's domain [default: the company code].
    #[arg(long)]
    app_id: Option<String>,
    #[arg(long)]
    domain: Option<String>,
}

impl Add {
    /// The profile's table and its login table.
    fn tables(&self) -> (Table, Table) {
        let mut profile = Table::new();
        let mut login = Table::new();
        profile.insert("vendor", value(self.vendor.as_str()));
        let text = |table: &mut Table, key: &str, setting: &Option<String>| {
            if let Some(setting) = setting {
                table.insert(key, value(setting.as_str()));
            }
        };
        text(&mut profile, "base_url", &self.base_url);
        match self.vendor {
            Vendor::ISolarCloud => text(&mut profile, "app_key", &self.app_key),
            Vendor::Ekuaibao => text(&mut login, "app_key", &self.app_key),
            _ => {}
        }
        text(&mut profile, "company_code", &self.company_code);
        text(&mut profile, "component_appid", &self.component_appid);
        text(&mut profile, "authorizer_appid", &self.authorizer_appid);
        text(&mut profile, "cluster_id", &self.cluster_id);
        if let Some(days) = self.validity_days {
            profile.insert("validity_days", value(i64::from(days)));
        }
        text(&mut login, "redirect_uri", &self.redirect_uri);
        text(&mut login, "user", &self.user);
        text(&mut login, "org_id", &self.org_id);
        text(&mut login, "app_id", &self.app_id);
        text(&mut login, "domain", &self.domain);
        (profile, login)
    }
}

pub fn run(args: Args) -> ExitCode {
    let path = args.config.path();
    let path = match path {
        Ok(path) => path,
        Err(crate::settings::Misconfigured(message)) => return output::unconfigured(&message),
    };
    let result = match &args.command {
        Command::Add(add) => add_profile(&args.config, &path, add),
        Command::List { json } => list(&args.config, *json),
        Command::Remove { name } => remove(&path, name).map(|()| {
            eprintln!(
                "removed profile {name} from {} (its stored tokens are kept)",
                path.display()
            );
        }),
    };
    match result {
        Ok(()) => exit::code(exit::SUCCESS),
        Err(message) => output::unconfigured(&message),
    }
}

fn read_document(path: &Path) -> Result<DocumentMut, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .map_err(|e: toml_edit::TomlError| format!("{}: {}", path.display(), e.message())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(DocumentMut::new()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Writes the document in place of the file (temporary file, then rename), mode 0600.
fn write_document(path: &Path, document: &DocumentMut) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut file =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(document.to_string().as_bytes()))
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(())
}

fn add_profile(config: &ConfigArgs, path: &Path, add: &Add) -> Result<(), String> {
    let mut document = read_document(path)?;
    let profiles = document
        .entry("profiles")
        .or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(true);
            Item::Table(table)
        })
        .as_table_mut()
        .ok_or("`profiles` in the file is not a table")?;
    if profiles.contains_key(&add.name) {
        return Err(format!(
            "profile {:?} exists already: `refresh profiles remove {}` first",
            add.name, add.name
        ));
    }
    let (mut profile, login) = add.tables();
    if !login.is_empty() {
        profile.insert("login", Item::Table(login));
    }
    profiles.insert(&add.name, Item::Table(profile));
    write_document(path, &document)?;
    // What the other commands read must load (a name they refuse, a setting of another vendor): else the profile
    // is taken out again.
    if let Err(crate::settings::Misconfigured(message)) = config.load() {
        let _ = remove(path, &add.name);
        return Err(message);
    }
    eprintln!(
        "added profile {} ({}) to {}",
        add.name,
        add.vendor,
        path.display()
    );
    Ok(())
}

fn list(config: &ConfigArgs, json: bool) -> Result<(), String> {
    let profiles = config.load().map_err(|e| e.0)?;
    let rows: Vec<serde_json::Value> = profiles
        .profiles
        .values()
        .map(|p| {
            serde_json::json!({
                "profile": p.name,
                "vendor": p.vendor.as_str(),
                "sinks": p.sinks.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>(),
                "readers": {"uids": p.readers.uids, "gids": p.readers.gids},
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    println!(
        "{:<20} {:<12} {:>5} {:>7}",
        "PROFILE", "VENDOR", "SINKS", "READERS"
    );
    for p in profiles.profiles.values() {
        let readers = p.readers.uids.len() + p.readers.gids.len();
        println!(
            "{:<20} {:<12} {:>5} {:>7}",
            p.name,
            p.vendor.as_str(),
            p.sinks.len(),
            readers
        );
    }
    Ok(())
}

fn remove(path: &Path, name: &str) -> Result<(), String> {
    let mut document = read_document(path)?;
    let removed = document
        .get_mut("profiles")
        .and_then(Item::as_table_mut)
        .and_then(|profiles| profiles.remove(name));
    if removed.is_none() {
        return Err(format!("no profile {name:?} in {}", path.display()));
    }
    write_document(path, &document)
}
