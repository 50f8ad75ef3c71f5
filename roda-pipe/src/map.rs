//! One output per input.

use core::marker::PhantomData;

use crate::{Collector, Stage};

/// Stage returned by [`map`]: emits `f(&input)` for every input.
///
/// ```
/// use roda_pipe::{map, Map, Stage};
///
/// fn square() -> Map<fn(&u32) -> u64, u32, u64> {
///     map(|x: &u32| u64::from(*x) * u64::from(*x))
/// }
/// let mut out = Vec::new();
/// square().process(&3, &mut out);
/// assert_eq!(out, vec![9]);
/// ```
pub struct Map<F, In, Out> {
    f: F,
    _types: PhantomData<fn(&In) -> Out>,
}

/// Transforms each input into exactly one output.
///
/// ```
/// use roda_pipe::{map, Stage};
///
/// let mut to_cents = map(|price: &f64| (price * 100.0).round() as i64);
/// let mut out = Vec::new();
/// to_cents.process(&1.25, &mut out);
/// assert_eq!(out, vec![125]);
/// ```
#[inline]
pub fn map<In, Out, F>(f: F) -> Map<F, In, Out>
where
    F: FnMut(&In) -> Out,
{
    Map {
        f,
        _types: PhantomData,
    }
}

impl<In, Out, F> Stage<In, Out> for Map<F, In, Out>
where
    F: FnMut(&In) -> Out,
{
    #[inline(always)]
    fn process<C: Collector<Out>>(&mut self, input: &In, out: &mut C) {
        out.push(&(self.f)(input));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_output_per_input() {
        let mut m = map(|x: &u64| x * 3);
        let mut out = Vec::new();
        for x in 0..4u64 {
            m.process(&x, &mut out);
        }
        assert_eq!(out, vec![0, 3, 6, 9]);
    }

    #[test]
    fn changes_type_and_may_keep_state_in_closure() {
        let mut n = 0u32;
        let mut m = map(|s: &&str| {
            n += 1;
            (n, s.len())
        });
        let mut out = Vec::new();
        m.process(&"ab", &mut out);
        m.process(&"xyz", &mut out);
        assert_eq!(out, vec![(1, 2), (2, 3)]);
    }
}
