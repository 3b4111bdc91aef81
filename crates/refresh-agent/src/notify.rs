//! Notifications: a webhook told when a credential needs a person, when it recovered, and when tokens the vendor
//! issued could not be saved. Bodies are JSON without secrets, signed with HMAC-SHA256 (`X-Refresh-Signature:
//! sha256=<hex>` over the exact body), sent from a bounded queue and retried with backoff.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use refresh_facade::{Secret, Vendor};
use serde::Serialize;
use tokio::sync::mpsc;

/// How many events wait at most; past that, new ones are dropped (and logged) rather than grow memory.
pub const QUEUE: usize = 256;
/// How many times one event is sent before it is given up (logged).
pub const ATTEMPTS: u32 = 5;
/// The first wait after a failed delivery; it doubles each time.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The credential needs a person: re-authorization, or no tokens stored.
    NeedsPerson,
    /// It has a renewable token again after needing a person or failing.
    Recovered,
    /// The vendor issued tokens the store did not take: they are held in memory (and rescued, where a rescue is
    /// set) until a write succeeds.
    TokensUnsaved,
    /// The vendor's refresh window closes soon ([`crate::agent::WINDOW_WARNING`]) and renewals are failing: a person
    /// has that long before the credential needs a new authorization.
    WindowClosing,
    /// Another writer stored tokens first, and the vendor's answer was kept as an orphan beside them (two processes
    /// renewed one credential).
    OrphanKept,
}

/// One notification's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event: Kind,
    pub profile: String,
    pub vendor: &'static str,
    pub at: String,
    /// Why, without secrets (the manager's error, whose vendor messages are scrubbed).
    pub detail: Option<String>,
}

impl Event {
    pub fn new(
        event: Kind,
        profile: &str,
        vendor: Vendor,
        at: DateTime<Utc>,
        detail: Option<String>,
    ) -> Event {
        Event {
            event,
            profile: profile.to_owned(),
            vendor: vendor.as_str(),
            at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            detail,
        }
    }
}

/// Where notifications go: an https:// URL, or http:// to a loopback host.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// Signs each body (HMAC-SHA256).
    pub secret: Secret,
}

impl Webhook {
    /// A webhook at `url`, refused unless it is https:// or http:// to a loopback host (a body says which
    /// credential failed, and a token for it must not be spoofable by anyone on the path).
    pub fn new(url: &str, secret: Secret) -> Result<Webhook, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook url {url:?}: {e}"))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(format!(
                    "webhook url {url:?}: https://, or http:// to a loopback host"
                ));
            }
        }
        Ok(Webhook {
            url: url.to_owned(),
            secret,
        })
    }
}

/// The signature header's value for `body`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Sends events to the webhook from a bounded queue, in order, each retried with backoff.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Event>,
}

impl Notifier {
    /// Starts the delivery task (on the current tokio runtime).
    pub fn start(webhook: Webhook, http: reqwest::Client) -> Notifier {
        let (queue, mut events) = mpsc::channel::<Event>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                deliver(&webhook, &http, &event).await;
            }
        });
        Notifier { queue }
    }

    /// A [`refresh_manager::ManagerOptions::on_rotate`] hook that notifies tokens kept as an orphan.
    pub fn rotation_hook(&self) -> impl Fn(&refresh_manager::Rotated) + Send + Sync + 'static {
        let notifier = self.clone();
        move |rotated| {
            if rotated.kept_as_orphan {
                let detail = format!("kept beside the record's version {}", rotated.version);
                notifier.send(Event::new(
                    Kind::OrphanKept,
                    rotated.id.as_str(),
                    rotated.vendor,
                    Utc::now(),
                    Some(detail),
                ));
            }
        }
    }

    /// Queues `event`; a full queue drops it, with a log line.
    pub fn send(&self, event: Event) {
        if let Err(error) = self.queue.try_send(event) {
            tracing::warn!(%error, "the notification queue is full: an event was dropped");
        }
    }
}

async fn deliver(webhook: &Webhook, http: &reqwest::Client, event: &Event) {
    let body = serde_json::to_vec(event).unwrap_or_default();
    let signature = signature(&webhook.secret, &body);
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("x-refresh-event", format!("{:?}", event.event))
            .header("x-refresh-signature", &signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(
                    status = response.status().as_u16(),
                    attempt,
                    "the webhook refused a notification"
                )
            }
            Err(error) => {
                tracing::warn!(error = %error.without_url(), attempt, "the webhook could not be reached")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(profile = %event.profile, event = ?event.event, "a notification was given up after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook that fails twice gets the event on the third attempt, after waits of 1 s and then 2 s.
    #[tokio::test]
    async fn a_failed_delivery_is_retried_with_doubling_waits() {
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
        let (kept, failures) = (Arc::clone(&seen), 2);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                let kept = Arc::clone(&kept);
                async move {
                    let mut seen = kept.lock().unwrap();
                    seen.push(std::time::Instant::now());
                    if seen.len() <= failures {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let webhook = Webhook::new(&url, Secret::from("k")).unwrap();
        let event = Event::new(
            Kind::Recovered,
            "p",
            Vendor::Ekuaibao,
            chrono::Utc::now(),
            None,
        );
        deliver(&webhook, &reqwest::Client::new(), &event).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            3,
            "delivered on the third attempt, and not sent again"
        );
        let (first, second) = (seen[1] - seen[0], seen[2] - seen[1]);
        assert!(first >= FIRST_RETRY && first < FIRST_RETRY * 2, "{first:?}");
        assert!(
            second >= FIRST_RETRY * 2 && second < FIRST_RETRY * 3,
            "{second:?}"
        );
    }

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        let secret = || Secret::from("k");
        assert!(Webhook::new("https://hooks.example/x", secret()).is_ok());
        assert!(Webhook::new("http://127.0.0.1:9/x", secret()).is_ok());
        assert!(Webhook::new("http://[::1]:9/x", secret()).is_ok());
        assert!(Webhook::new("http://localhost:9/x", secret()).is_ok());
        assert!(Webhook::new("http://hooks.example/x", secret()).is_err());
        assert!(Webhook::new("ftp://127.0.0.1/x", secret()).is_err());
        assert!(Webhook::new("not a url", secret()).is_err());
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let secret = Secret::from("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
