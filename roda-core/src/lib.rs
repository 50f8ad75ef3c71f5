//! The vocabulary every Roda crate shares: the [`Record`] bound, the store traits
//! ([`Appendable`], [`Settable`], [`IterativeReadable`]) and the one error type
//! [`RodaError`].
//!
//! ```
//! use roda_core::{Record, RodaError};
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Tick { price: f64, qty: u64 }
//!
//! fn takes_records<T: Record>() -> usize { std::mem::size_of::<T>() }
//! assert_eq!(takes_records::<Tick>(), 16);
//! let err = RodaError::Full { capacity: 8 };
//! assert!(err.to_string().contains("try_append"));
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod error;
mod record;
mod traits;

pub use error::{Result, RodaError};
pub use record::Record;
pub use traits::{Appendable, IterativeReadable, Settable};

/// Re-exported so users can derive `Pod` without naming bytemuck in their own manifest.
pub use bytemuck;
