//! Per-key running state.

use core::hash::Hash;
use core::marker::PhantomData;

use crate::keyed::KeyedStates;

use crate::{Collector, Stage};

/// Stage returned by [`stateful`]: keeps one state per key and emits it after every
/// input.
///
/// State lives in a `hashbrown` table with its default (foldhash) hasher, and the last
/// key used is cached, so a run of inputs of one key skips the hashing. Use
/// [`with_capacity`](Stateful::with_capacity) to pre-size it.
///
/// ```
/// use roda_pipe::{stateful, Stage};
///
/// // Highest price seen per instrument id.
/// let mut high = stateful(
///     |t: &(u32, f64)| t.0,
///     |t: &(u32, f64)| t.1,
///     |max: &mut f64, t: &(u32, f64)| *max = max.max(t.1),
/// );
/// let mut out = Vec::new();
/// for t in [(1, 10.0), (2, 5.0), (1, 9.0), (1, 11.0)] {
///     high.process(&t, &mut out);
/// }
/// assert_eq!(out, vec![10.0, 5.0, 10.0, 11.0]);
/// ```
pub struct Stateful<KF, IF, FF, In, K, Out> {
    key: KF,
    init: IF,
    fold: FF,
    states: KeyedStates<K, Out>,
    _types: PhantomData<fn(&In)>,
}

/// Folds inputs into one state per key and emits the updated state after every input.
///
/// For each input `x`, with `k = key(&x)`:
/// * the first time `k` is seen, its state becomes `init(&x)` (`fold` is not called);
/// * afterwards, `fold(&mut state, &x)` updates it in place;
/// * either way, the key's state is then emitted.
///
/// `K` needs only `Hash + Eq`: the key is moved into the map the first time it is seen
/// and never cloned. The number of states grows with the number of distinct keys; pre-size
/// the map with [`Stateful::with_capacity`] to avoid allocating while running.
///
/// ```
/// use roda_pipe::{stateful, Stage};
///
/// // Running volume per side (true = buy).
/// let mut volume = stateful(|o: &(bool, u64)| o.0, |o: &(bool, u64)| o.1, |v: &mut u64, o: &(bool, u64)| *v += o.1)
///     .with_capacity(2);
/// let mut out = Vec::new();
/// for o in [(true, 5), (false, 2), (true, 1)] {
///     volume.process(&o, &mut out);
/// }
/// assert_eq!(out, vec![5, 2, 6]);
/// ```
#[inline]
pub fn stateful<In, K, Out, KF, IF, FF>(
    key: KF,
    init: IF,
    fold: FF,
) -> Stateful<KF, IF, FF, In, K, Out>
where
    KF: FnMut(&In) -> K,
    IF: FnMut(&In) -> Out,
    FF: FnMut(&mut Out, &In),
    K: Hash + Eq,
{
    Stateful {
        key,
        init,
        fold,
        states: KeyedStates::new(),
        _types: PhantomData,
    }
}

impl<KF, IF, FF, In, K: Hash + Eq, Out> Stateful<KF, IF, FF, In, K, Out> {
    /// Reserves room for at least `keys` distinct keys, so that processing allocates
    /// nothing until more keys than that have been seen.
    ///
    /// ```
    /// use roda_pipe::stateful;
    ///
    /// let counts = stateful(|x: &u8| *x, |_: &u8| 1u32, |n: &mut u32, _: &u8| *n += 1)
    ///     .with_capacity(256);
    /// # let _ = counts;
    /// ```
    #[must_use]
    pub fn with_capacity(mut self, keys: usize) -> Self {
        self.states.reserve(keys);
        self
    }
}

impl<KF, IF, FF, In, K, Out> Stage<In, Out> for Stateful<KF, IF, FF, In, K, Out>
where
    KF: FnMut(&In) -> K,
    IF: FnMut(&In) -> Out,
    FF: FnMut(&mut Out, &In),
    K: Hash + Eq,
{
    #[inline]
    fn process<C: Collector<Out>>(&mut self, input: &In, out: &mut C) {
        let init = &mut self.init;
        let (state, new) = self
            .states
            .get_or_insert_with((self.key)(input), || init(input));
        if !new {
            (self.fold)(state, input);
        }
        out.push(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_on_first_then_fold_and_emit_every_time() {
        let mut folds = 0;
        let mut s = stateful(
            |x: &u32| x % 2,
            |x: &u32| u64::from(*x) * 100,
            |acc: &mut u64, x: &u32| {
                folds += 1;
                *acc += u64::from(*x);
            },
        );
        let mut out = Vec::new();
        for x in [1u32, 2, 3, 4, 5] {
            s.process(&x, &mut out);
        }
        assert_eq!(out, vec![100, 200, 103, 204, 108]);
        drop(s);
        assert_eq!(folds, 3);
    }

    #[test]
    fn key_needs_no_clone() {
        #[derive(Hash, PartialEq, Eq)]
        struct Key(u8);
        let mut s = stateful(|x: &u8| Key(*x), |_: &u8| 1u8, |n: &mut u8, _: &u8| *n += 1);
        let mut out = Vec::new();
        for x in [7, 7, 8, 7] {
            s.process(&x, &mut out);
        }
        assert_eq!(out, vec![1, 2, 1, 3]);
    }

    #[test]
    fn with_capacity_presizes() {
        let s = stateful(|x: &u64| *x, |x: &u64| *x, |_: &mut u64, _: &u64| {}).with_capacity(1000);
        assert!(s.states.capacity() >= 1000);
    }
}
