//! When each credential's next background refresh (or retry) is due: one min-heap of deadlines for the whole
//! manager, served by one task, instead of one sleeping task per credential. An entry costs a few dozen bytes; a
//! credential that is rescheduled bumps its generation, and the stale entry is skipped when it comes up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::clock::{ManagerClock, Moment};
use crate::record::CredentialId;

/// A deadline for one credential, valid while the credential's generation is still `generation`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    pub(crate) at: Moment,
    pub(crate) generation: u64,
    pub(crate) id: CredentialId,
}

/// The deadlines, earliest first.
#[derive(Default)]
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    /// Woken when an earlier deadline is added, or when the manager is dropped.
    changed: Notify,
}

impl Timers {
    pub(crate) fn set(&self, due: Due) {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = heap.peek().is_none_or(|Reverse(first)| due.at < first.at);
        heap.push(Reverse(due));
        drop(heap);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Wakes the task serving these timers (it then finds out whether its manager still exists).
    pub(crate) fn wake(&self) {
        self.changed.notify_one();
    }

    pub(crate) fn len(&self) -> usize {
        self.heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every entry due at `now`, removed.
    fn take_due(&self, now: Moment) -> Vec<Due> {
        let mut heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(first)| first.at <= now) {
            if let Some(Reverse(entry)) = heap.pop() {
                due.push(entry);
            }
        }
        due
    }

    fn earliest(&self) -> Option<Moment> {
        let heap = self.heap.lock().unwrap_or_else(PoisonError::into_inner);
        heap.peek().map(|Reverse(first)| first.at)
    }

    /// Serves the timers until `fire` answers `false` (its manager is gone): sleeps until the earliest deadline,
    /// then hands every due entry to `fire`.
    pub(crate) async fn serve(&self, clock: ManagerClock, mut fire: impl FnMut(Vec<Due>) -> bool) {
        loop {
            let changed = self.changed.notified();
            match self.earliest() {
                None => changed.await,
                Some(at) => {
                    tokio::select! {
                        () = clock.sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
            if !fire(self.take_due(clock.now())) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn id(name: &str) -> CredentialId {
        CredentialId::new(name).unwrap()
    }

    #[tokio::test]
    async fn due_entries_fire_in_order_when_their_time_comes_and_the_server_stops_when_told() {
        let manual = ManualClock::new();
        let clock = ManagerClock::from(manual.clone());
        let timers = Arc::new(Timers::default());
        let now = clock.now();
        for (name, minutes) in [("late", 30), ("early", 10), ("middle", 20)] {
            timers.set(Due {
                at: now.after(Duration::from_secs(minutes * 60)),
                generation: 1,
                id: id(name),
            });
        }
        let (fired, receive) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn({
            let (timers, clock) = (Arc::clone(&timers), clock.clone());
            async move {
                timers
                    .serve(clock, |due| {
                        // Woken without anything due (a new earliest deadline): nothing to report.
                        if due.is_empty() {
                            return true;
                        }
                        let stop = due.iter().any(|d| d.id.as_str() == "late");
                        fired
                            .send(due.into_iter().map(|d| d.id).collect::<Vec<_>>())
                            .unwrap();
                        !stop
                    })
                    .await;
            }
        });
        let mut receive = receive;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(receive.try_recv().is_err(), "nothing is due yet");
        manual.advance(Duration::from_secs(25 * 60));
        let first = tokio::time::timeout(Duration::from_secs(5), receive.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first, [id("early"), id("middle")]);
        assert_eq!(timers.len(), 1);
        manual.advance(Duration::from_secs(10 * 60));
        let second = tokio::time::timeout(Duration::from_secs(5), receive.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second, [id("late")]);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_server() {
        let clock = ManagerClock::system();
        let timers = Arc::new(Timers::default());
        timers.set(Due {
            at: clock.now().after(Duration::from_secs(3600)),
            generation: 1,
            id: id("hour"),
        });
        let server = tokio::spawn({
            let (timers, clock) = (Arc::clone(&timers), clock.clone());
            async move { timers.serve(clock, |due| due.is_empty()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        timers.set(Due {
            at: clock.now(),
            generation: 1,
            id: id("now"),
        });
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("woken at once")
            .unwrap();
        assert_eq!(timers.len(), 1);
    }
}
