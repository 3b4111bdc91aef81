//! Single flight: at most one task at a time computes a value, and every caller that needs it meanwhile joins that
//! one task instead of starting its own. The task runs to its end however many of its callers stop waiting (a
//! renewal cut off between the vendor's answer and the store's write would lose the vendor's new tokens).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// A flight's outcome, as each caller awaits it.
pub(super) type Joined<T> = Shared<BoxFuture<'static, T>>;

pub(super) struct SingleFlight<T> {
    running: Mutex<Option<Running<T>>>,
}

/// A flight, and whether its task has ended: a `Shared` future only knows it is done once someone polled it, and a
/// flight started in the background is polled by no one.
struct Running<T> {
    joined: Joined<T>,
    ended: Arc<AtomicBool>,
}

/// Marks a flight ended when its task ends, however it ends (a panic too): else every later caller would join a
/// flight that is over.
struct EndsFlight(Arc<AtomicBool>);

impl Drop for EndsFlight {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            running: Mutex::new(None),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// The flight under way, if its task has not ended.
    pub(super) fn running(&self) -> Option<Joined<T>> {
        self.lock()
            .as_ref()
            .filter(|running| !running.ended.load(Ordering::SeqCst))
            .map(|running| running.joined.clone())
    }

    /// The flight under way, or else the one `start` begins, decided under one lock: two callers never start two.
    /// `start` may refuse with an error instead. The new flight runs as its own task on the current runtime; a
    /// caller whose task is gone without an outcome (it panicked, or the runtime shut down) gets
    /// `lost(why)`.
    pub(super) fn join_or_start<E, F>(
        &self,
        start: impl FnOnce() -> Result<F, E>,
        lost: impl FnOnce(String) -> T + Send + 'static,
    ) -> Result<Joined<T>, E>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut running = self.lock();
        if let Some(flight) = running.as_ref()
            && !flight.ended.load(Ordering::SeqCst)
        {
            return Ok(flight.joined.clone());
        }
        let flight = start()?;
        let ended = Arc::new(AtomicBool::new(false));
        let ends = EndsFlight(Arc::clone(&ended));
        let task = tokio::spawn(async move {
            let _ends = ends;
            flight.await
        });
        let joined = async move { task.await.unwrap_or_else(|join| lost(join.to_string())) }
            .boxed()
            .shared();
        *running = Some(Running {
            joined: joined.clone(),
            ended,
        });
        Ok(joined)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running<T>>> {
        // Replaced whole under the lock: a panic elsewhere cannot leave it half-written.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn started(flight: &SingleFlight<u32>, count: &Arc<AtomicUsize>, value: u32) -> Joined<u32> {
        let count = Arc::clone(count);
        flight
            .join_or_start::<Infallible, _>(
                || {
                    Ok(async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        value
                    })
                },
                |_| 0,
            )
            .unwrap()
    }

    #[tokio::test]
    async fn callers_meanwhile_join_the_one_flight_and_a_later_caller_starts_another() {
        let flight = SingleFlight::default();
        let count = Arc::new(AtomicUsize::new(0));
        let first = started(&flight, &count, 1);
        let second = started(&flight, &count, 2);
        assert_eq!((first.await, second.await), (1, 1));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert!(
            flight.running().is_none(),
            "a flight whose task ended is not joined"
        );
        assert_eq!(started(&flight, &count, 3).await, 3);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flight_nobody_awaits_runs_to_its_end() {
        let flight = SingleFlight::default();
        let count = Arc::new(AtomicUsize::new(0));
        drop(started(&flight, &count, 1));
        while flight.running().is_some() {
            tokio::task::yield_now().await;
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_start_starts_nothing() {
        let flight: SingleFlight<u32> = SingleFlight::default();
        let refused = flight.join_or_start(|| Err::<std::future::Ready<u32>, _>("waiting"), |_| 0);
        assert_eq!(refused.err(), Some("waiting"));
        assert!(flight.running().is_none());
    }

    /// A panicked task ends its flight (the next caller starts a new one, instead of joining a finished one for
    /// ever) and its callers get the `lost` value.
    #[tokio::test]
    async fn a_panicked_flight_ends_and_its_callers_learn_why() {
        let flight: SingleFlight<String> = SingleFlight::default();
        let panicked = flight
            .join_or_start::<Infallible, _>(
                || Ok(async { panic!("a bug") }),
                |why| format!("lost: {why}"),
            )
            .unwrap();
        let outcome = panicked.await;
        assert!(
            outcome.starts_with("lost: ") && outcome.contains("panicked"),
            "{outcome}"
        );
        assert!(
            flight.running().is_none(),
            "the panicked flight still counts as running"
        );
        let next = flight
            .join_or_start::<Infallible, _>(|| Ok(async { "again".to_owned() }), |why| why)
            .unwrap();
        assert_eq!(next.await, "again");
    }
}
