//! `refresh status`: for each profile, its vendor, how long its access token has left, until when it can be
//! refreshed, how the last command on it ended, the orphans kept with it (tokens a vendor issued whose write
//! lost to another writer's), and tokens rescued because the store refused them (the next command on the profile
//! stores them); as a table, or `--json`, which also shows who holds a shared store's lease on each credential
//! and for how long. It reads the store and the rescue; it sends nothing.

use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use refresh_manager::TokenStore;
use refresh_postgres::LeaseHolder;
use serde_json::json;

use crate::profiles::{ConfigArgs, Profiles};
use crate::settings::Misconfigured;
use crate::{exit, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// One JSON array of objects instead of the table.
    #[arg(long)]
    json: bool,
}

/// One profile's line.
struct Row {
    profile: String,
    vendor: &'static str,
    version: Option<u64>,
    expires_at: Option<DateTime<Utc>>,
    refreshable_until: Option<DateTime<Utc>>,
    /// The outcome, or why the record could not be read.
    outcome: Option<(String, Option<DateTime<Utc>>)>,
    orphans: usize,
    /// When tokens the store refused were rescued, if they wait there.
    rescued_at: Option<DateTime<Utc>>,
    /// Who holds the credential's lease in a shared store (a replica renewing it, or one that died holding it).
    lease: Option<LeaseHolder>,
    /// What was odd in the answers the last command stored (`[{"kind", "detail"}]`).
    anomalies: serde_json::Value,
}

pub async fn run(args: Args) -> ExitCode {
    let profiles = match args.config.load() {
        Ok(profiles) => profiles,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let rows = match rows(&profiles).await {
        Ok(rows) => rows,
        Err(Misconfigured(message)) => return output::unconfigured(&message),
    };
    let now = Utc::now();
    if args.json {
        let rows: Vec<_> = rows.iter().map(|row| json_row(row, now)).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        print_table(&rows, now);
    }
    exit::code(exit::SUCCESS)
}

async fn rows(profiles: &Profiles) -> Result<Vec<Row>, Misconfigured> {
    let store = profiles.store()?;
    let rescued = profiles.rescue().list();
    let mut rows = Vec::new();
    for profile in profiles.profiles.values() {
        let mut row = Row {
            profile: profile.name.clone(),
            vendor: profile.vendor.as_str(),
            version: None,
            expires_at: None,
            refreshable_until: None,
            outcome: profiles
                .last_outcome(profile)
                .map(|(outcome, at)| (outcome, Some(at))),
            orphans: 0,
            rescued_at: rescued
                .iter()
                .filter(|rescued| rescued.id == profile.id)
                .map(|rescued| rescued.rescued_at)
                .max(),
            lease: None,
            anomalies: profiles.last_anomalies(profile),
        };
        match store.load(&profile.id).await {
            Ok(Some(record)) => {
                row.version = Some(record.version);
                row.expires_at = Some(record.tokens.expires_at);
                row.refreshable_until = record.tokens.refreshable_until;
                row.orphans = record.orphans.len();
            }
            Ok(None) => {}
            Err(error) => row.outcome = Some((format!("unreadable: {error}"), None)),
        }
        // A lease that cannot be read is shown as none: the record's line above already says what failed.
        row.lease = store.lease(&profile.id).await.ok().flatten();
        rows.push(row);
    }
    Ok(rows)
}

fn rfc3339(at: Option<DateTime<Utc>>) -> serde_json::Value {
    json!(at.map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

fn json_row(row: &Row, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "profile": row.profile,
        "vendor": row.vendor,
        "version": row.version,
        "expires_at": rfc3339(row.expires_at),
        "expires_in_secs": row.expires_at.map(|at| (at - now).num_seconds()),
        "refreshable_until": rfc3339(row.refreshable_until),
        "last_outcome": row.outcome.as_ref().map(|(outcome, _)| outcome),
        "last_outcome_at": rfc3339(row.outcome.as_ref().and_then(|(_, at)| *at)),
        "last_anomalies": row.anomalies,
        "orphans": row.orphans,
        "rescued_at": rfc3339(row.rescued_at),
        "lease": row.lease.as_ref().map(|lease| json!({
            "owner": lease.owner,
            "left_secs": lease.left.as_secs_f64(),
        })),
    })
}

/// `1d2h`, `3h05m`, `4m10s`, `9s`; `-` before it for the past.
fn span(delta: TimeDelta) -> String {
    let (sign, seconds) = if delta < TimeDelta::zero() {
        ("-", -delta.num_seconds())
    } else {
        ("", delta.num_seconds())
    };
    let (days, hours, minutes, seconds) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    let text = match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m{seconds:02}s"),
        (0, _, _) => format!("{hours}h{minutes:02}m"),
        _ => format!("{days}d{hours}h"),
    };
    format!("{sign}{text}")
}

fn print_table(rows: &[Row], now: DateTime<Utc>) {
    let header = [
        "PROFILE",
        "VENDOR",
        "EXPIRES IN",
        "REFRESHABLE UNTIL",
        "LAST OUTCOME",
        "ORPHANS",
        "RESCUED",
    ]
    .map(String::from);
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let never_stored = row.version.is_none();
            [
                row.profile.clone(),
                row.vendor.to_owned(),
                row.expires_at
                    .map_or_else(|| "not logged in".into(), |at| span(at - now)),
                match row.refreshable_until {
                    Some(until) => until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    None if never_stored => "-".into(),
                    None => "no limit".into(),
                },
                row.outcome.as_ref().map_or_else(
                    || "-".into(),
                    |(outcome, at)| match at {
                        Some(at) => format!("{outcome} ({} ago)", span(now - *at)),
                        None => outcome.clone(),
                    },
                ),
                row.orphans.to_string(),
                row.rescued_at
                    .map_or_else(|| "-".into(), |at| format!("{} ago", span(now - at))),
            ]
        })
        .collect();
    crate::demo::print_rows(&header, &cells);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_at_a_glance() {
        assert_eq!(span(TimeDelta::seconds(9)), "9s");
        assert_eq!(span(TimeDelta::seconds(250)), "4m10s");
        assert_eq!(span(TimeDelta::seconds(3 * 3600 + 5 * 60 + 7)), "3h05m");
        assert_eq!(span(TimeDelta::seconds(26 * 3600)), "1d2h");
        assert_eq!(span(TimeDelta::seconds(-70)), "-1m10s");
    }
}
