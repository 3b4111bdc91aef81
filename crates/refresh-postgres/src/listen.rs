//! Waking waiters: one connection per store `LISTEN`s on the store's channel and hands every notification to the
//! tasks waiting for a lease in this process. Replicas never poll for a lease; they wait for a notice, or at most
//! until the holder's lease lapses (a holder that died sends none).

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The channel every store of one database notifies on.
pub(crate) const CHANNEL: &str = "refresh_kit";

/// What happened to a credential's row, as sent in a notification's payload (`c:<id>:<scope>`, `r:<id>:<scope>`).
/// The scope is the store's schema and table: every store of one database shares the channel, and a notice about
/// another schema's row must not wake a waiter here (its lease may still be held).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// New tokens were committed.
    Committed(String),
    /// A lease was given up.
    Released(String),
    /// The listening connection was (re)established: notices may have been missed, so every waiter looks again.
    Listening,
}

impl Notice {
    pub(crate) fn committed_payload(id: &str, scope: &str) -> String {
        format!("c:{id}:{scope}")
    }

    pub(crate) fn released_payload(id: &str, scope: &str) -> String {
        format!("r:{id}:{scope}")
    }

    /// The notice a payload carries if it is about `scope` (a credential id holds no `:`; a scope may).
    fn parse(payload: &str, scope: &str) -> Option<Notice> {
        let mut parts = payload.splitn(3, ':');
        let (kind, id, of) = (parts.next()?, parts.next()?, parts.next()?);
        if of != scope {
            return None;
        }
        match kind {
            "c" => Some(Notice::Committed(id.to_owned())),
            "r" => Some(Notice::Released(id.to_owned())),
            _ => None,
        }
    }
}

/// Listens until every receiver is gone, reconnecting after a lost connection.
pub(crate) fn spawn(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    scope: String,
    notices: broadcast::Sender<Notice>,
) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(50);
        while notices.receiver_count() > 0 {
            match listen(&config, &tls, &scope, &notices).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(error = %crate::error::chain(&error), retry_in_ms = pause.as_millis() as u64,
                        "the store's LISTEN connection failed; waiters fall back to lease deadlines until it is back");
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    });
}

/// One connection's life: `LISTEN`, then forward notifications. `Ok` when no one listens any more.
async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    scope: &str,
    notices: &broadcast::Sender<Notice>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    // The connection is driven by its own task, which hands on what the server sends unasked.
    let (messages_in, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let ended = !matches!(message, Some(Ok(_)));
            if messages_in.send(message).is_err() || ended {
                return;
            }
        }
    });
    let result = forward(&client, &mut messages, scope, notices).await;
    pump.abort();
    result
}

async fn forward(
    client: &tokio_postgres::Client,
    messages: &mut tokio::sync::mpsc::UnboundedReceiver<
        Option<Result<AsyncMessage, tokio_postgres::Error>>,
    >,
    scope: &str,
    notices: &broadcast::Sender<Notice>,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    let _ = notices.send(Notice::Listening);
    let mut alive = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            message = messages.recv() => match message.flatten() {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if let Some(notice) = Notice::parse(notification.payload(), scope) {
                        let _ = notices.send(notice);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                // The connection ended without an error: a query on it tells why.
                None => return client.simple_query("").await.map(|_| ()),
            },
            _ = alive.tick() => {
                if notices.receiver_count() == 0 {
                    return Ok(());
                }
                // A connection the server dropped says so only when used.
                client.simple_query("").await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_happened_to_which_credential_of_which_store() {
        let scope = "sa.refresh_kit_credentials";
        assert_eq!(
            Notice::parse(&Notice::committed_payload("a.b", scope), scope),
            Some(Notice::Committed("a.b".into()))
        );
        assert_eq!(
            Notice::parse(&Notice::released_payload("x", "s:a.t"), "s:a.t"),
            Some(Notice::Released("x".into()))
        );
        // Another schema's notice wakes no one here.
        assert_eq!(
            Notice::parse(
                &Notice::committed_payload("a.b", "sb.refresh_kit_credentials"),
                scope
            ),
            None
        );
        assert_eq!(Notice::parse("x:y:sa.refresh_kit_credentials", scope), None);
        assert_eq!(Notice::parse("c:y", scope), None);
        assert_eq!(Notice::parse("nothing", scope), None);
    }
}
