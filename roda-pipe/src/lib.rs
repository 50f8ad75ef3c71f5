//! Stages, pipes and the [`pipe!`] macro: Roda's way of turning one stream of records
//! into another inside a single thread, with no allocation on the hot path.
//!
//! # The model
//!
//! A [`Stage`] receives one input at a time, by reference, and pushes zero, one or
//! many outputs into a [`Collector`]. Nothing is returned and nothing is buffered: a
//! stage that drops an item simply pushes nothing, a stage that fans out pushes
//! several times.
//!
//! A *pipe* is a ready-made stage built from plain closures: [`map`], [`filter`],
//! [`filter_map`], [`inspect`], and the keyed pipes [`stateful`], [`delta`] and
//! [`dedup_by`], which keep one entry of state per key.
//!
//! [`pipe!`] composes stages left to right into one stage (a nest of [`Chain`]s). Each
//! item an upstream stage emits is handed straight to the next stage's `process`
//! through a tiny forwarding collector, so a whole chain runs as one call tree that
//! the compiler can inline into a plain loop:
//!
//! * **Static dispatch.** Every stage, closure and collector is a concrete generic
//!   type; there is no `dyn`, no `Box` and no intermediate `Vec`.
//! * **No allocation after warm-up.** Stateless pipes never allocate. Keyed pipes
//!   store their state in a [`hashbrown`](https://docs.rs/hashbrown) table with the last key cached; pre-size it
//!   with `with_capacity(n)` and, once every key has been seen once, processing
//!   allocates nothing. (Whether the final [`Collector`] allocates is up to it: a
//!   `Vec` grows, a closure need not.)
//!
//! ```
//! use roda_pipe::{filter, map, pipe, stateful, Stage};
//!
//! // Double each value, keep those above 3, then keep a running sum per `x % 4`.
//! let mut p = pipe![
//!     map(|x: &u64| x * 2),
//!     filter(|x: &u64| *x > 3),
//!     stateful(|x: &u64| x % 4, |x: &u64| *x, |sum: &mut u64, x: &u64| *sum += x)
//!         .with_capacity(2),
//! ];
//!
//! let mut out = Vec::new();
//! for x in [1u64, 2, 3, 4] {
//!     p.process(&x, &mut out);
//! }
//! // 2 is dropped; 4, 6, 8 pass with keys 0, 2, 0, so the sums are 4, 6, 4 + 8.
//! assert_eq!(out, vec![4, 6, 12]);
//! ```
//!
//! # Type errors
//!
//! Stages are checked against each other where the composed stage is *used*: the first
//! `process` call, or a function returning `impl Stage<In, Out>` (building a chain checks
//! nothing, so that stages generic over their input compose freely). Feeding `u32`s into
//! a filter of `String`s therefore fails at the `process` call, with rustc's E0599
//! "the method `process` exists for struct `Chain<Map<..>, Filter<..>, _>`, but its trait
//! bounds were not satisfied", followed by a note naming the stage that does not fit:
//! "`Filter<{closure}, String>: Stage<u32, _>` ... which is required by
//! `Chain<..>: Stage<u64, _>`". Returning the chain as `impl Stage<In, Out>` gives
//! E0277 instead, which names the mismatch directly: "the trait `Stage<u32, String>` is
//! not implemented for `Filter<{closure}, String>` ... but trait `Stage<String, String>`
//! is implemented for it" (see the second example under [`pipe!`]).
//!
//! ```compile_fail,E0599
//! use roda_pipe::{filter, map, pipe, Stage};
//!
//! let mut p = pipe![map(|x: &u64| *x as u32), filter(|s: &String| s.is_empty())];
//! let mut out: Vec<u32> = Vec::new();
//! p.process(&1u64, &mut out);
//! ```
//!
//! Write out the parameter types of the closures given to pipes (`|x: &u64| ...`), as
//! all examples here do: since building a chain checks nothing, a closure body is
//! type-checked before the compiler learns what flows into it, and field accesses or
//! method calls on an unannotated parameter fail with "type annotations needed".
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod chain;
mod dedup_by;
mod delta;
mod filter;
mod inspect;
mod keyed;
mod map;
mod stateful;

pub use chain::Chain;
pub use dedup_by::{dedup_by, DedupBy};
pub use delta::{delta, Delta};
pub use filter::{filter, filter_map, Filter, FilterMap};
pub use inspect::{inspect, Inspect};
pub use map::{map, Map};
pub use stateful::{stateful, Stateful};

/// One step of a pipeline: turns each input into zero, one or many outputs.
///
/// `process` receives the input by reference and pushes every output into `out`.
/// The collector type is a generic parameter of the method, so every call is
/// statically dispatched and can be inlined; a stage works with any [`Collector`]
/// (a `Vec`, a closure, the next stage of a [`Chain`], a journal writer, ...).
///
/// The trait itself puts no bounds on `In` or `Out`; implementations add the bounds
/// they need. A type may implement `Stage` for several input types.
///
/// ```
/// use roda_pipe::{Collector, Stage};
///
/// /// Emits every input twice.
/// struct Twice;
///
/// impl<T> Stage<T, T> for Twice {
///     fn process<C: Collector<T>>(&mut self, input: &T, out: &mut C) {
///         out.push(input);
///         out.push(input);
///     }
/// }
///
/// let mut out = Vec::new();
/// Twice.process(&7u8, &mut out);
/// assert_eq!(out, vec![7, 7]);
/// ```
pub trait Stage<In, Out> {
    /// Handles one input, pushing each of its outputs (possibly none) into `out`.
    fn process<C: Collector<Out>>(&mut self, input: &In, out: &mut C);
}

/// Where a [`Stage`] puts its outputs.
///
/// Implemented for `Vec<T>` (copies each item in) and for every `FnMut(&T)` closure
/// (called once per item). Other crates implement it for their own sinks, such as a
/// journal writer.
///
/// A closure passed as a collector needs its parameter type written out
/// (`|x: &u64| ...`): the compiler only infers closure parameter types from `Fn*`
/// bounds, and here the bound is `Collector<T>`. Without it rustc reports
/// "implementation of `FnMut` is not general enough".
///
/// ```
/// use roda_pipe::{map, Collector, Stage};
///
/// let mut double = map(|x: &u32| x * 2);
///
/// let mut v = Vec::new();
/// double.process(&3, &mut v);
/// assert_eq!(v, vec![6]);
///
/// let mut sum = 0;
/// double.process(&4, &mut |x: &u32| sum += x);
/// assert_eq!(sum, 8);
///
/// // Any type can be a collector.
/// struct Count(usize);
/// impl<T> Collector<T> for Count {
///     fn push(&mut self, _item: &T) {
///         self.0 += 1;
///     }
/// }
/// let mut n = Count(0);
/// double.process(&5, &mut n);
/// assert_eq!(n.0, 1);
/// ```
pub trait Collector<T> {
    /// Accepts one item.
    fn push(&mut self, item: &T);
}

// These two impls do not overlap: the `Fn*` traits are `#[fundamental]`, so the
// compiler may rely on `Vec<T>` never implementing `FnMut(&T)`.

/// Copies each item onto the end of the vector (which may allocate as it grows).
impl<T: Copy> Collector<T> for Vec<T> {
    #[inline(always)]
    fn push(&mut self, item: &T) {
        Vec::push(self, *item);
    }
}

/// Calls the closure once per item.
impl<T, F: FnMut(&T)> Collector<T> for F {
    #[inline(always)]
    fn push(&mut self, item: &T) {
        self(item);
    }
}

/// Composes stages left to right into one [`Stage`].
///
/// `pipe![a]` is `a` itself; `pipe![a, b, c]` is `Chain::new(a, Chain::new(b, c))`:
/// every output of `a` is processed by `b` and every output of `b` by `c`, immediately,
/// without buffering. A trailing comma is accepted. Each argument can be any
/// expression whose value implements [`Stage`].
///
/// ```
/// use roda_pipe::{filter, map, pipe, Stage};
///
/// let mut p = pipe![map(|x: &u64| x * 2), filter(|x: &u64| *x > 3)];
/// let mut out = Vec::new();
/// for x in 1..=3u64 {
///     p.process(&x, &mut out);
/// }
/// assert_eq!(out, vec![4, 6]);
/// ```
///
/// Mismatched stages are a compile error where the chain is used (see the crate docs
/// for the messages), here E0277 because the chain is returned as `impl Stage`:
///
/// ```compile_fail,E0277
/// use roda_pipe::{filter, map, pipe, Stage};
///
/// fn short_names() -> impl Stage<u64, String> {
///     // `map` emits u32, but `filter` expects String.
///     pipe![map(|x: &u64| *x as u32), filter(|s: &String| s.len() < 8)]
/// }
/// ```
#[macro_export]
macro_rules! pipe {
    () => {
        ::core::compile_error!("pipe! needs at least one stage")
    };
    ($only:expr $(,)?) => {
        $only
    };
    ($first:expr, $($rest:expr),+ $(,)?) => {
        $crate::Chain::new($first, $crate::pipe!($($rest),+))
    };
}
