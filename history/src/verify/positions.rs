//! The positions the log holds, one bit each. `verify` reads the log in whatever order the
//! server returns it (a sorted read costs FerretDB 1.x the whole collection in memory), so
//! "every position 1..N once" is checked against a set rather than against the previous
//! position: a million positions take 122 KiB.

/// What [`SeenPositions::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    First,
    Again,
    /// Past [`SeenPositions::limit`]: not recorded.
    Beyond,
}

pub(crate) struct SeenPositions {
    words: Vec<u64>,
    limit: u64,
    highest: u64,
}

impl SeenPositions {
    /// A set for a log of about `expected` events. Positions far past it (four times, and
    /// at least 16,777,216) are refused rather than recorded, so that one wild position
    /// cannot make the set take gigabytes.
    pub(crate) fn new(expected: u64) -> Self {
        SeenPositions {
            words: Vec::new(),
            limit: expected.saturating_mul(4).max(1 << 24),
            highest: 0,
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The highest position recorded.
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Records `position` (at least 1).
    pub(crate) fn insert(&mut self, position: u64) -> Seen {
        if position == 0 || position > self.limit {
            return Seen::Beyond;
        }
        let (word, bit) = ((position / 64) as usize, 1u64 << (position % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.highest = self.highest.max(position);
        if self.words[word] & bit != 0 {
            return Seen::Again;
        }
        self.words[word] |= bit;
        Seen::First
    }

    fn contains(&self, position: u64) -> bool {
        self.words
            .get((position / 64) as usize)
            .is_some_and(|word| word & (1u64 << (position % 64)) != 0)
    }

    /// The runs of positions in `1..=highest` not recorded, as `(first, last)`, in order.
    pub(crate) fn missing(&self) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut start = None;
        for position in 1..=self.highest {
            match (self.contains(position), start) {
                (false, None) => start = Some(position),
                (true, Some(first)) => {
                    runs.push((first, position - 1));
                    start = None;
                }
                _ => {}
            }
        }
        // The highest position is recorded, so no run is open at the end.
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_in_any_order_leave_only_the_holes_missing() {
        let mut seen = SeenPositions::new(10);
        for position in [9, 1, 2, 5, 3, 10, 6, 130] {
            assert_eq!(seen.insert(position), Seen::First, "{position}");
        }
        assert_eq!(seen.highest(), 130);
        assert_eq!(seen.missing(), vec![(4, 4), (7, 8), (11, 129)]);
    }

    #[test]
    fn a_position_recorded_twice_is_seen_again() {
        let mut seen = SeenPositions::new(10);
        assert_eq!(seen.insert(64), Seen::First);
        assert_eq!(seen.insert(63), Seen::First);
        assert_eq!(seen.insert(64), Seen::Again);
        assert_eq!(seen.missing(), vec![(1, 62)]);
    }

    #[test]
    fn positions_past_the_limit_and_zero_are_not_recorded() {
        let mut seen = SeenPositions::new(10);
        assert_eq!(seen.limit(), 1 << 24);
        assert_eq!(seen.insert(0), Seen::Beyond);
        assert_eq!(seen.insert((1 << 24) + 1), Seen::Beyond);
        assert_eq!(seen.highest(), 0);
        assert!(seen.missing().is_empty());
    }
}
