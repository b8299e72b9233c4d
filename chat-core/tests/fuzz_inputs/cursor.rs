//! Reading choices from the fuzzer's bytes.
//!
//! Every byte string must decode to some input, so a cursor that runs out
//! reads zeros: the fuzzer never wastes an execution on a refused input,
//! and a short input is simply a short run.

/// The fuzzer's bytes, read front to back.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    /// A number below `count` (which must not be 0).
    pub fn below(&mut self, count: usize) -> usize {
        usize::from(self.byte()) % count
    }

    /// Eight bytes as a little-endian number.
    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = self.byte();
        }
        u64::from_le_bytes(bytes)
    }

    /// Up to `count` bytes (fewer at the end).
    pub fn take(&mut self, count: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(count.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// A string of up to `bytes_max` bytes: a length byte, then the bytes,
    /// with invalid UTF-8 replaced (frames carry only valid UTF-8).
    pub fn text(&mut self, bytes_max: usize) -> String {
        let length = usize::from(self.byte()) % (bytes_max + 1);
        String::from_utf8_lossy(self.take(length)).into_owned()
    }

    /// One of `table`, or (one time in `table.len() + 1`) a string of the
    /// fuzzer's own of up to `bytes_max` bytes.
    pub fn choose(&mut self, table: &[&str], bytes_max: usize) -> String {
        let index = self.below(table.len() + 1);
        match table.get(index) {
            Some(entry) => (*entry).to_owned(),
            None => self.text(bytes_max),
        }
    }
}
