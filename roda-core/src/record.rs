/// A value that can live in a Roda store: plain old data, shareable across threads.
///
/// `bytemuck::Pod` guarantees every bit pattern is valid and there is no padding, so a
/// record can be written into a memory-mapped file by one process and viewed as `&T` by
/// another without any decoding step. Every such type is a `Record` automatically.
///
/// Zero-sized types satisfy the bound but are rejected when a store is created
/// (`RodaError::ZeroSizedRecord`): a journal of nothing cannot hold a sequence.
pub trait Record: bytemuck::Pod + Send + Sync + 'static {}

impl<T: bytemuck::Pod + Send + Sync + 'static> Record for T {}
