//! Dropping inputs: [`filter`] and [`filter_map`].

use core::marker::PhantomData;

use crate::{Collector, Stage};

/// Stage returned by [`filter`]: passes an input through when the predicate holds.
///
/// ```
/// use roda_pipe::{filter, Filter, Stage};
///
/// fn even() -> Filter<fn(&u32) -> bool, u32> {
///     filter(|x: &u32| x % 2 == 0)
/// }
/// let mut out = Vec::new();
/// even().process(&4, &mut out);
/// assert_eq!(out, vec![4]);
/// ```
pub struct Filter<F, T> {
    predicate: F,
    _types: PhantomData<fn(&T)>,
}

/// Passes through the inputs for which `predicate` returns `true` and drops the rest.
///
/// ```
/// use roda_pipe::{filter, Stage};
///
/// let mut big = filter(|qty: &u64| *qty >= 100);
/// let mut out = Vec::new();
/// for q in [5, 150, 99, 100] {
///     big.process(&q, &mut out);
/// }
/// assert_eq!(out, vec![150, 100]);
/// ```
#[inline]
pub fn filter<T, F>(predicate: F) -> Filter<F, T>
where
    F: FnMut(&T) -> bool,
{
    Filter {
        predicate,
        _types: PhantomData,
    }
}

impl<T, F> Stage<T, T> for Filter<F, T>
where
    F: FnMut(&T) -> bool,
{
    #[inline(always)]
    fn process<C: Collector<T>>(&mut self, input: &T, out: &mut C) {
        if (self.predicate)(input) {
            out.push(input);
        }
    }
}

/// Stage returned by [`filter_map`]: emits the `Some` values of `f(&input)`.
///
/// ```
/// use roda_pipe::{filter_map, FilterMap, Stage};
///
/// fn halve_even() -> FilterMap<fn(&u32) -> Option<u32>, u32, u32> {
///     filter_map(|x: &u32| (x % 2 == 0).then_some(x / 2))
/// }
/// let mut out = Vec::new();
/// halve_even().process(&8, &mut out);
/// assert_eq!(out, vec![4]);
/// ```
pub struct FilterMap<F, In, Out> {
    f: F,
    _types: PhantomData<fn(&In) -> Out>,
}

/// Transforms each input into at most one output: `Some(y)` emits `y`, `None` emits
/// nothing.
///
/// ```
/// use roda_pipe::{filter_map, Stage};
///
/// let mut parse = filter_map(|s: &&str| s.parse::<u16>().ok());
/// let mut out = Vec::new();
/// for s in ["12", "x", "7"] {
///     parse.process(&s, &mut out);
/// }
/// assert_eq!(out, vec![12, 7]);
/// ```
#[inline]
pub fn filter_map<In, Out, F>(f: F) -> FilterMap<F, In, Out>
where
    F: FnMut(&In) -> Option<Out>,
{
    FilterMap {
        f,
        _types: PhantomData,
    }
}

impl<In, Out, F> Stage<In, Out> for FilterMap<F, In, Out>
where
    F: FnMut(&In) -> Option<Out>,
{
    #[inline(always)]
    fn process<C: Collector<Out>>(&mut self, input: &In, out: &mut C) {
        if let Some(y) = (self.f)(input) {
            out.push(&y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_keeps_matching_in_order() {
        let mut f = filter(|x: &i32| *x > 0);
        let mut out = Vec::new();
        for x in [-1, 3, 0, 2, -5, 1] {
            f.process(&x, &mut out);
        }
        assert_eq!(out, vec![3, 2, 1]);
    }

    #[test]
    fn filter_can_drop_everything() {
        let mut f = filter(|_: &u8| false);
        let mut calls = 0;
        for x in 0..10u8 {
            f.process(&x, &mut |_: &u8| calls += 1);
        }
        assert_eq!(calls, 0);
    }

    #[test]
    fn filter_map_emits_somes() {
        let mut f = filter_map(|x: &u32| x.checked_sub(2));
        let mut out = Vec::new();
        for x in [0, 1, 2, 5] {
            f.process(&x, &mut out);
        }
        assert_eq!(out, vec![0, 3]);
    }
}
