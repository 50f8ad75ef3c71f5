//! Composition of two stages.

use core::marker::PhantomData;

use crate::{Collector, Stage};

/// Two stages run back to back: every output of `A` is processed by `B` at once.
///
/// `Mid` is the type that flows between them. It is recorded only in the type (as
/// `PhantomData<fn(Mid) -> Mid>`, which keeps `Chain` `Send`, `Sync` and free of drop
/// obligations), and is normally inferred. Usually built by [`pipe!`](crate::pipe),
/// which nests chains to the right: `pipe![a, b, c]` is
/// `Chain::new(a, Chain::new(b, c))`.
///
/// ```
/// use roda_pipe::{filter, map, Chain, Stage};
///
/// let mut c = Chain::new(map(|x: &i32| x - 1), filter(|x: &i32| *x != 0));
/// let mut out = Vec::new();
/// for x in [1, 2, 3] {
///     c.process(&x, &mut out);
/// }
/// assert_eq!(out, vec![1, 2]);
/// ```
pub struct Chain<A, B, Mid> {
    first: A,
    second: B,
    _mid: PhantomData<fn(Mid) -> Mid>,
}

impl<A, B, Mid> Chain<A, B, Mid> {
    /// Runs `first`, then feeds each of its outputs to `second`.
    ///
    /// No bounds are checked here, so that stages generic over their input can be
    /// chained; a mismatch shows up as an unsatisfied `Stage` bound where the chain is
    /// used.
    ///
    /// ```
    /// use roda_pipe::{map, Chain, Stage};
    ///
    /// let mut c = Chain::new(map(|x: &u8| u16::from(*x) * 100), map(|x: &u16| x + 1));
    /// let mut out = Vec::new();
    /// c.process(&7, &mut out);
    /// assert_eq!(out, vec![701u16]);
    /// ```
    #[inline]
    pub fn new(first: A, second: B) -> Self {
        Chain {
            first,
            second,
            _mid: PhantomData,
        }
    }
}

impl<In, Mid, Out, A, B> Stage<In, Out> for Chain<A, B, Mid>
where
    A: Stage<In, Mid>,
    B: Stage<Mid, Out>,
{
    #[inline(always)]
    fn process<C: Collector<Out>>(&mut self, input: &In, out: &mut C) {
        let mut forward = Forward {
            next: &mut self.second,
            out,
            _out: PhantomData,
        };
        self.first.process(input, &mut forward);
    }
}

/// The collector between the two halves of a [`Chain`]: each item pushed into it is
/// processed by the next stage straight away.
struct Forward<'a, B, C, Out> {
    next: &'a mut B,
    out: &'a mut C,
    _out: PhantomData<fn(Out)>,
}

impl<Mid, Out, B, C> Collector<Mid> for Forward<'_, B, C, Out>
where
    B: Stage<Mid, Out>,
    C: Collector<Out>,
{
    #[inline(always)]
    fn push(&mut self, item: &Mid) {
        self.next.process(item, self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{filter, filter_map, inspect, map, stateful};

    /// Emits each input `n` times.
    struct Repeat(usize);

    impl<T> Stage<T, T> for Repeat {
        fn process<C: Collector<T>>(&mut self, input: &T, out: &mut C) {
            for _ in 0..self.0 {
                out.push(input);
            }
        }
    }

    fn run<In, Out: Copy, S: Stage<In, Out>>(s: &mut S, input: &[In]) -> Vec<Out> {
        let mut out = Vec::new();
        for x in input {
            s.process(x, &mut out);
        }
        out
    }

    #[test]
    fn single_stage_is_itself() {
        let mut p = crate::pipe![map(|x: &u64| x + 1)];
        assert_eq!(run(&mut p, &[1, 2]), vec![2, 3]);
        let mut p = crate::pipe![map(|x: &u64| x + 1),];
        assert_eq!(run(&mut p, &[1]), vec![2]);
    }

    #[test]
    fn left_to_right_order() {
        // (x + 1) * 10 , not x * 10 + 1
        let mut p = crate::pipe![map(|x: &u64| x + 1), map(|x: &u64| x * 10)];
        assert_eq!(run(&mut p, &[1, 2]), vec![20, 30]);
    }

    #[test]
    fn fan_out_and_drop_propagate() {
        let mut p = crate::pipe![
            Repeat(3),
            filter(|x: &u32| *x % 2 == 1),
            Repeat(2),
            map(|x: &u32| x * 10),
        ];
        assert_eq!(
            run(&mut p, &[1, 2, 3]),
            vec![10; 6]
                .into_iter()
                .chain(vec![30; 6])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn type_changes_along_the_chain() {
        let mut seen = Vec::new();
        {
            let mut p = crate::pipe![
                filter_map(|x: &u64| u32::try_from(*x).ok()),
                inspect(|x: &u32| seen.push(*x)),
                map(|x: &u32| f64::from(*x) / 2.0),
                stateful(
                    |_: &f64| (),
                    |x: &f64| *x,
                    |acc: &mut f64, x: &f64| *acc += x
                ),
            ];
            assert_eq!(run(&mut p, &[4, u64::MAX, 2]), vec![2.0, 3.0]);
        }
        assert_eq!(seen, vec![4, 2]);
    }

    #[test]
    fn long_chain_and_closure_collector() {
        let mut p = crate::pipe![
            map(|x: &u64| x + 1),
            map(|x: &u64| x + 1),
            map(|x: &u64| x + 1),
            map(|x: &u64| x + 1),
            map(|x: &u64| x + 1),
            map(|x: &u64| x + 1),
        ];
        let mut sum = 0;
        for x in 0..10u64 {
            p.process(&x, &mut |y: &u64| sum += y);
        }
        assert_eq!(sum, (0..10).map(|x| x + 6).sum::<u64>());
    }

    #[test]
    fn chains_nest_as_stages() {
        let inner = crate::pipe![map(|x: &i64| -x), filter(|x: &i64| *x < 0)];
        let mut p = crate::pipe![
            inner,
            map(|x: &i64| x * 2),
            Chain::new(Repeat(1), Repeat(2))
        ];
        assert_eq!(run(&mut p, &[1, -1, 2]), vec![-2, -2, -4, -4]);
    }

    fn doubled_shift() -> impl Stage<u8, u16> {
        crate::pipe![map(|x: &u8| u16::from(*x)), map(|x: &u16| x << 8)]
    }

    #[test]
    fn returned_as_impl_stage() {
        let mut s = doubled_shift();
        assert_eq!(run(&mut s, &[1, 2]), vec![256, 512]);
    }
}
