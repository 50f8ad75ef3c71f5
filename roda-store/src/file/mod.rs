//! The OS and on-disk layer shared by every store: the header layout and its checks,
//! the mapped region (file, anonymous or heap), the writer's lock, the memory options,
//! and the backing that ties a validated header to its region.

pub(crate) mod backing;
pub(crate) mod futex;
pub(crate) mod header;
pub(crate) mod lock;
pub(crate) mod options;
#[cfg(not(roda_loom))]
pub(crate) mod pretouch;
pub(crate) mod region;
