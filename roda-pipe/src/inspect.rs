//! Observing items without changing them.

use core::marker::PhantomData;

use crate::{Collector, Stage};

/// Stage returned by [`inspect`]: calls `f(&input)`, then passes the input through.
///
/// ```
/// use roda_pipe::{inspect, Inspect, Stage};
///
/// fn print() -> Inspect<fn(&u8), u8> {
///     inspect(|x: &u8| println!("{x}"))
/// }
/// let mut out = Vec::new();
/// print().process(&1, &mut out);
/// assert_eq!(out, vec![1]);
/// ```
pub struct Inspect<F, T> {
    f: F,
    _types: PhantomData<fn(&T)>,
}

/// Calls `f` on every input, then passes the input through unchanged. Useful for
/// counting, logging or metrics in the middle of a pipeline.
///
/// ```
/// use roda_pipe::{inspect, Stage};
///
/// let mut seen = 0u32;
/// let mut out = Vec::new();
/// {
///     let mut count = inspect(|_: &u64| seen += 1);
///     count.process(&10, &mut out);
///     count.process(&20, &mut out);
/// }
/// assert_eq!((seen, out), (2, vec![10, 20]));
/// ```
#[inline]
pub fn inspect<T, F>(f: F) -> Inspect<F, T>
where
    F: FnMut(&T),
{
    Inspect {
        f,
        _types: PhantomData,
    }
}

impl<T, F> Stage<T, T> for Inspect<F, T>
where
    F: FnMut(&T),
{
    #[inline(always)]
    fn process<C: Collector<T>>(&mut self, input: &T, out: &mut C) {
        (self.f)(input);
        out.push(input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_f_then_passes_through() {
        let mut log = Vec::new();
        let mut out = Vec::new();
        {
            let mut i = inspect(|x: &i16| log.push(*x * 2));
            for x in [1, -2, 3] {
                i.process(&x, &mut out);
            }
        }
        assert_eq!(log, vec![2, -4, 6]);
        assert_eq!(out, vec![1, -2, 3]);
    }
}
