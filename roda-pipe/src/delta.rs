//! Comparing each item with the previous one of its key.

use core::hash::Hash;
use core::marker::PhantomData;

use crate::keyed::KeyedStates;

use crate::{Collector, Stage};

/// Stage returned by [`delta`]: remembers the last item of each key and compares the
/// next one against it.
///
/// ```
/// use roda_pipe::{delta, Stage};
///
/// // Price change per instrument, skipping the first quote of each.
/// let mut change = delta(
///     |q: &(u32, i64)| q.0,
///     |curr: (u32, i64), prev: Option<(u32, i64)>| prev.map(|p| curr.1 - p.1),
/// );
/// let mut out = Vec::new();
/// for q in [(1, 100), (2, 50), (1, 103), (2, 49)] {
///     change.process(&q, &mut out);
/// }
/// assert_eq!(out, vec![3, -1]);
/// ```
pub struct Delta<KF, F, T, K, Out> {
    key: KF,
    f: F,
    previous: KeyedStates<K, T>,
    _types: PhantomData<fn(&T) -> Out>,
}

/// Calls `f(current, previous)` for every item, where `previous` is the last item seen
/// with the same key (`None` the first time), emits `f`'s `Some` result, then remembers
/// `current` as the key's previous item.
///
/// Items are copied into the map, so `T: Copy`. `K` needs only `Hash + Eq`. Pre-size
/// the map with [`Delta::with_capacity`] to avoid allocating while running.
///
/// ```
/// use roda_pipe::{delta, Stage};
///
/// // Emit a sensor id whenever its reading jumps by more than 10.
/// let mut jumps = delta(
///     |r: &(u8, i32)| r.0,
///     |c: (u8, i32), p: Option<(u8, i32)>| p.filter(|p| (c.1 - p.1).abs() > 10).map(|_| c.0),
/// )
/// .with_capacity(16);
/// let mut out = Vec::new();
/// for r in [(1, 0), (1, 5), (1, 30), (2, 0)] {
///     jumps.process(&r, &mut out);
/// }
/// assert_eq!(out, vec![1]);
/// ```
#[inline]
pub fn delta<T, K, Out, KF, F>(key: KF, f: F) -> Delta<KF, F, T, K, Out>
where
    T: Copy,
    KF: FnMut(&T) -> K,
    F: FnMut(T, Option<T>) -> Option<Out>,
    K: Hash + Eq,
{
    Delta {
        key,
        f,
        previous: KeyedStates::new(),
        _types: PhantomData,
    }
}

impl<KF, F, T, K: Hash + Eq, Out> Delta<KF, F, T, K, Out> {
    /// Reserves room for at least `keys` distinct keys, so that processing allocates
    /// nothing until more keys than that have been seen.
    ///
    /// ```
    /// use roda_pipe::delta;
    ///
    /// let d = delta(|x: &u32| x % 10, |c: u32, p: Option<u32>| p.map(|p| c.wrapping_sub(p)))
    ///     .with_capacity(10);
    /// # let _ = d;
    /// ```
    #[must_use]
    pub fn with_capacity(mut self, keys: usize) -> Self {
        self.previous.reserve(keys);
        self
    }
}

impl<KF, F, T, K, Out> Stage<T, Out> for Delta<KF, F, T, K, Out>
where
    T: Copy,
    KF: FnMut(&T) -> K,
    F: FnMut(T, Option<T>) -> Option<Out>,
    K: Hash + Eq,
{
    #[inline]
    fn process<C: Collector<Out>>(&mut self, input: &T, out: &mut C) {
        let (previous, new) = self
            .previous
            .get_or_insert_with((self.key)(input), || *input);
        let previous = if new {
            None
        } else {
            Some(core::mem::replace(previous, *input))
        };
        if let Some(y) = (self.f)(*input, previous) {
            out.push(&y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_previous_of_same_key() {
        let mut d = delta(
            |x: &(u8, u32)| x.0,
            |c: (u8, u32), p: Option<(u8, u32)>| Some((c.1, p.map(|p| p.1))),
        );
        let mut out = Vec::new();
        for x in [(0, 1), (1, 10), (0, 2), (0, 3), (1, 11)] {
            d.process(&x, &mut out);
        }
        assert_eq!(
            out,
            vec![
                (1, None),
                (10, None),
                (2, Some(1)),
                (3, Some(2)),
                (11, Some(10))
            ]
        );
    }

    #[test]
    fn remembers_even_when_nothing_emitted() {
        let mut d = delta(|_: &u32| (), |c: u32, p: Option<u32>| p.filter(|_| c == 0));
        let mut out = Vec::new();
        for x in [5, 6, 0, 7, 0] {
            d.process(&x, &mut out);
        }
        // The 0s see 6 and 7, the items right before them.
        assert_eq!(out, vec![6, 7]);
    }

    #[test]
    fn with_capacity_presizes() {
        let d = delta(|x: &u64| *x, |_: u64, _: Option<u64>| None::<u64>).with_capacity(500);
        assert!(d.previous.capacity() >= 500);
    }
}
