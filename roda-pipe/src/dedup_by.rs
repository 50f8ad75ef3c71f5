//! Dropping repeats per key.

use core::hash::Hash;
use core::marker::PhantomData;

use crate::keyed::KeyedStates;
use roda_core::{bytemuck, Record};

use crate::{Collector, Stage};

/// Stage returned by [`dedup_by`]: drops an item identical to the last one of its key.
///
/// ```
/// use roda_pipe::{dedup_by, Stage};
///
/// let mut d = dedup_by(|x: &[u32; 2]| x[0]);
/// let mut out = Vec::new();
/// for x in [[1, 5], [1, 5], [2, 5], [1, 6]] {
///     d.process(&x, &mut out);
/// }
/// assert_eq!(out, vec![[1, 5], [2, 5], [1, 6]]);
/// ```
pub struct DedupBy<KF, T, K> {
    key: KF,
    last: KeyedStates<K, T>,
    _types: PhantomData<fn(&T)>,
}

/// Passes an item through unless it is bytewise equal to the last item passed with the
/// same key; passed items are remembered as their key's last.
///
/// Equality is `bytemuck::bytes_of(a) == bytemuck::bytes_of(b)`, which is why `T` must
/// be a [`Record`]: no padding, so equal bytes mean equal fields. For floats this is
/// bit equality (`0.0` and `-0.0` differ; identical `NaN`s are equal). `K` needs only
/// `Hash + Eq`. Pre-size the map with [`DedupBy::with_capacity`] to avoid allocating
/// while running.
///
/// ```
/// use roda_core::bytemuck::{Pod, Zeroable};
/// use roda_pipe::{dedup_by, Stage};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[repr(C)]
/// struct Quote {
///     instrument: u32,
///     bid: u32,
/// }
///
/// let mut changes = dedup_by(|q: &Quote| q.instrument).with_capacity(8);
/// let mut out = Vec::new();
/// for (instrument, bid) in [(1, 10), (1, 10), (2, 10), (1, 11), (1, 10)] {
///     changes.process(&Quote { instrument, bid }, &mut out);
/// }
/// let bids: Vec<u32> = out.iter().map(|q| q.bid).collect();
/// assert_eq!(bids, vec![10, 10, 11, 10]);
/// ```
#[inline]
pub fn dedup_by<T, K, KF>(key: KF) -> DedupBy<KF, T, K>
where
    T: Record,
    KF: FnMut(&T) -> K,
    K: Hash + Eq,
{
    DedupBy {
        key,
        last: KeyedStates::new(),
        _types: PhantomData,
    }
}

impl<KF, T, K: Hash + Eq> DedupBy<KF, T, K> {
    /// Reserves room for at least `keys` distinct keys, so that processing allocates
    /// nothing until more keys than that have been seen.
    ///
    /// ```
    /// use roda_pipe::dedup_by;
    ///
    /// let d = dedup_by(|x: &u64| x >> 32).with_capacity(64);
    /// # let _ = d;
    /// ```
    #[must_use]
    pub fn with_capacity(mut self, keys: usize) -> Self {
        self.last.reserve(keys);
        self
    }
}

impl<KF, T, K> Stage<T, T> for DedupBy<KF, T, K>
where
    T: Record,
    KF: FnMut(&T) -> K,
    K: Hash + Eq,
{
    #[inline]
    fn process<C: Collector<T>>(&mut self, input: &T, out: &mut C) {
        let (last, new) = self.last.get_or_insert_with((self.key)(input), || *input);
        if new {
            out.push(input);
        } else if bytemuck::bytes_of(last) != bytemuck::bytes_of(input) {
            *last = *input;
            out.push(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_of_the_same_key_only() {
        let mut d = dedup_by(|x: &u64| x % 10);
        let mut out = Vec::new();
        for x in [1, 1, 11, 11, 1, 2, 2, 12] {
            d.process(&x, &mut out);
        }
        assert_eq!(out, vec![1, 11, 1, 2, 12]);
    }

    #[test]
    fn compares_bits_of_floats() {
        let mut d = dedup_by(|_: &f64| ());
        let mut out = Vec::new();
        for x in [0.0, -0.0, -0.0, f64::NAN, f64::NAN] {
            d.process(&x, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert!(out[0].is_sign_positive() && out[1].is_sign_negative() && out[2].is_nan());
    }

    #[test]
    fn with_capacity_presizes() {
        let d = dedup_by(|x: &u32| *x).with_capacity(100);
        assert!(d.last.capacity() >= 100);
    }
}
