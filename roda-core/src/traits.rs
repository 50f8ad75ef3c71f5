/// A store that takes records at its end: the journal writer.
pub trait Appendable<T> {
    /// Appends `item` and returns its sequence (0 for the first record).
    ///
    /// Implementations with a fixed capacity panic when full; they offer a fallible
    /// variant (`try_append`) beside this method.
    fn append(&mut self, item: &T) -> u64;
}

/// A store of indexed slots that are overwritten in place: the slot store writer.
pub trait Settable<T> {
    /// Stores `item` in slot `index`, replacing what was there.
    fn set(&mut self, index: usize, item: &T);
}

/// A cursor that reads records in order.
pub trait IterativeReadable<T> {
    /// The record at the cursor, advancing past it; `None`, without moving, when
    /// nothing new has been published.
    fn next(&mut self) -> Option<&T>;

    /// The record that the last successful read ended on (what [`next`](Self::next)
    /// returned last), or `None` before the first read.
    fn get(&self) -> Option<&T>;

    /// The cursor: how many records were consumed, which is also the sequence of the
    /// next record to read.
    fn get_index(&self) -> u64;
}
