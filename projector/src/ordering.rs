//! Putting deliveries back into position order.
//!
//! JetStream delivers in position order except for republished duplicates, redeliveries and
//! messages published by hand. [`Reorder`] holds what arrives early in a bounded `BTreeMap`
//! keyed by position, hands out only the run that continues the applied prefix, and tells the
//! caller when the next position is overdue (or the buffer is full) so it can be read from the
//! event store instead. It never hands out an event twice and never out of order.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// What happened to an offered delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// At or below the applied position: already done, acknowledge and forget it.
    Duplicate,
    /// Kept until the positions before it are applied.
    Held,
    /// Another copy of a position already held; acknowledge it with the held one.
    HeldAgain,
}

/// An early delivery and every copy of it that must be acknowledged once it is applied.
#[derive(Debug)]
pub(crate) struct Held<T> {
    pub(crate) item: T,
    pub(crate) copies: Vec<T>,
}

#[derive(Debug)]
pub(crate) struct Reorder<T> {
    /// Highest position handed out (every position at or below it is dealt with).
    applied: u64,
    held: BTreeMap<u64, Held<T>>,
    capacity: usize,
    gap_wait: Duration,
    /// Since when `applied + 1` has been wanted: something later is held or the store is
    /// known to hold it.
    waiting_since: Option<Instant>,
}

impl<T> Reorder<T> {
    pub(crate) fn new(applied: u64, capacity: usize, gap_wait: Duration) -> Self {
        Reorder {
            applied,
            held: BTreeMap::new(),
            capacity: capacity.max(1),
            gap_wait,
            waiting_since: None,
        }
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Offers one delivery at `position`; `item` comes back in [`Reorder::take_ready`] or is
    /// returned at once when it is a duplicate.
    pub(crate) fn offer(&mut self, position: u64, item: T) -> (Offer, Option<T>) {
        if position <= self.applied {
            return (Offer::Duplicate, Some(item));
        }
        match self.held.get_mut(&position) {
            Some(held) => {
                held.copies.push(item);
                (Offer::HeldAgain, None)
            }
            None => {
                self.held.insert(
                    position,
                    Held {
                        item,
                        copies: Vec::new(),
                    },
                );
                if position > self.applied + 1 {
                    self.waiting_since.get_or_insert_with(Instant::now);
                }
                (Offer::Held, None)
            }
        }
    }

    /// Takes the held run `applied + 1, applied + 2, …` (at most `max`) and counts it applied.
    /// The caller must apply them before offering anything else of the same run again.
    pub(crate) fn take_ready(&mut self, max: usize) -> Vec<(u64, Held<T>)> {
        let mut run = Vec::new();
        while run.len() < max {
            let next = self.applied + 1;
            let Some(held) = self.held.remove(&next) else {
                break;
            };
            run.push((next, held));
            self.applied = next;
        }
        if !run.is_empty() {
            self.reset_wait();
        }
        run
    }

    /// Records that positions up to `position` were applied from elsewhere (the event store);
    /// held copies at or below it are returned for acknowledgement.
    pub(crate) fn advance_to(&mut self, position: u64) -> Vec<Held<T>> {
        if position <= self.applied {
            return Vec::new();
        }
        self.applied = position;
        let later = self.held.split_off(&(position + 1));
        let done = std::mem::replace(&mut self.held, later);
        self.reset_wait();
        done.into_values().collect()
    }

    /// Marks `applied + 1` as wanted because the store is known to hold it.
    pub(crate) fn want_next(&mut self) {
        self.waiting_since.get_or_insert_with(Instant::now);
    }

    /// Re-evaluates the wait after the caller found nothing to fill.
    pub(crate) fn settle(&mut self) {
        self.reset_wait();
    }

    fn reset_wait(&mut self) {
        // Whatever is still held beyond a new gap starts a fresh wait.
        self.waiting_since = if self
            .held
            .keys()
            .next()
            .is_some_and(|&p| p > self.applied + 1)
        {
            Some(Instant::now())
        } else {
            None
        };
    }

    /// The positions to read from the store now, as `(after, up_to)`: the gap before the first
    /// held delivery once it has been missing for `gap_wait` or the buffer is full.
    pub(crate) fn overdue_gap(&self, now: Instant) -> Option<(u64, Option<u64>)> {
        let since = self.waiting_since?;
        let full = self.held.len() >= self.capacity;
        if !full && now.duration_since(since) < self.gap_wait {
            return None;
        }
        let up_to = self.held.keys().next().map(|first| first - 1);
        Some((self.applied, up_to.filter(|&p| p > self.applied)))
    }

    /// When the current wait becomes overdue, if anything is waited for.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.waiting_since.map(|since| since + self.gap_wait)
    }

    /// Drops the first held delivery: the store does not know its position, so it was not
    /// published by the relay.
    pub(crate) fn drop_first(&mut self) -> Option<(u64, Held<T>)> {
        let first = self.held.pop_first();
        self.reset_wait();
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reorder() -> Reorder<&'static str> {
        Reorder::new(10, 4, Duration::from_millis(200))
    }

    #[test]
    fn positions_at_or_below_the_applied_one_are_duplicates() {
        let mut r = reorder();
        assert_eq!(r.offer(10, "a").0, Offer::Duplicate);
        assert_eq!(r.offer(3, "b").0, Offer::Duplicate);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn a_run_is_handed_out_only_from_the_next_position_in_order() {
        let mut r = reorder();
        r.offer(13, "c");
        r.offer(12, "b");
        assert!(r.take_ready(100).is_empty());
        r.offer(11, "a");
        let run: Vec<_> = r
            .take_ready(100)
            .into_iter()
            .map(|(p, h)| (p, h.item))
            .collect();
        assert_eq!(run, vec![(11, "a"), (12, "b"), (13, "c")]);
        assert_eq!(r.applied(), 13);
        assert_eq!(r.offer(12, "again").0, Offer::Duplicate);
    }

    #[test]
    fn copies_of_a_held_position_are_kept_for_acknowledgement_not_applied_twice() {
        let mut r = reorder();
        r.offer(11, "a");
        assert_eq!(r.offer(11, "a2").0, Offer::HeldAgain);
        let run = r.take_ready(100);
        assert_eq!(run.len(), 1);
        assert_eq!(run[0].1.copies, vec!["a2"]);
    }

    #[test]
    fn a_gap_becomes_overdue_after_the_wait_or_when_the_buffer_is_full() {
        let mut r = reorder();
        let start = Instant::now();
        r.offer(14, "d");
        assert_eq!(r.overdue_gap(start), None);
        assert_eq!(
            r.overdue_gap(start + Duration::from_millis(250)),
            Some((10, Some(13)))
        );
        let mut full = reorder();
        for p in 15..19 {
            full.offer(p, "x");
        }
        assert_eq!(full.overdue_gap(Instant::now()), Some((10, Some(14))));
    }

    #[test]
    fn advancing_past_held_positions_returns_them_and_keeps_later_ones() {
        let mut r = reorder();
        r.offer(12, "b");
        r.offer(15, "e");
        let done = r.advance_to(13);
        assert_eq!(done.len(), 1);
        assert_eq!(r.held(), 1);
        assert!(r.take_ready(10).is_empty());
        r.offer(14, "d");
        assert_eq!(r.take_ready(10).len(), 2);
        assert_eq!(r.applied(), 15);
    }

    #[test]
    fn take_ready_respects_the_batch_limit() {
        let mut r = reorder();
        for p in 11..15 {
            r.offer(p, "x");
        }
        assert_eq!(r.take_ready(3).len(), 3);
        assert_eq!(r.applied(), 13);
        assert_eq!(r.take_ready(3).len(), 1);
    }
}
