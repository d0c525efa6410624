// SPDX-License-Identifier: GPL-2.0

//! The item key shared by every ferrofs tree: (object id, type, offset).
//!
//! Keys order by object id, then type, then offset, so all items of one object are
//! adjacent and, within an object, grouped by type. The meaning of `objectid` and `offset`
//! depends on the type (an inode number and a file offset, a device id and a physical
//! address, a logical address and a length, ...).

use super::bytes;

/// Encoded size of a key: `objectid` (8), `kind` (1), `offset` (8).
pub const KEY_SIZE: usize = 17;

/// An item key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The object the item belongs to.
    pub objectid: u64,
    /// The item type (one of the `*_KEY` constants of the tree that holds it).
    pub kind: u8,
    /// Type-specific position within the object.
    pub offset: u64,
}

impl Key {
    /// The smallest key.
    pub const MIN: Key = Key::new(0, 0, 0);
    /// The largest key.
    pub const MAX: Key = Key::new(u64::MAX, u8::MAX, u64::MAX);

    /// A key from its parts.
    pub const fn new(objectid: u64, kind: u8, offset: u64) -> Self {
        Self {
            objectid,
            kind,
            offset,
        }
    }

    /// Encodes the key at `offset` of `buf`; `None` if it does not fit.
    pub fn encode(&self, buf: &mut [u8], offset: usize) -> Option<()> {
        bytes::put_u64(buf, offset, self.objectid)?;
        bytes::put_u8(buf, offset.checked_add(8)?, self.kind)?;
        bytes::put_u64(buf, offset.checked_add(9)?, self.offset)
    }

    /// Decodes a key at `offset` of `buf`; `None` if the buffer is too short.
    pub fn decode(buf: &[u8], offset: usize) -> Option<Self> {
        Some(Self {
            objectid: bytes::u64_at(buf, offset)?,
            kind: bytes::u8_at(buf, offset.checked_add(8)?)?,
            offset: bytes::u64_at(buf, offset.checked_add(9)?)?,
        })
    }

    /// The key immediately after this one, if any.
    pub fn successor(&self) -> Option<Self> {
        if let Some(offset) = self.offset.checked_add(1) {
            return Some(Self { offset, ..*self });
        }
        if let Some(kind) = self.kind.checked_add(1) {
            return Some(Self::new(self.objectid, kind, 0));
        }
        Some(Self::new(self.objectid.checked_add(1)?, 0, 0))
    }

    /// The key immediately before this one, if any.
    pub fn predecessor(&self) -> Option<Self> {
        if let Some(offset) = self.offset.checked_sub(1) {
            return Some(Self { offset, ..*self });
        }
        if let Some(kind) = self.kind.checked_sub(1) {
            return Some(Self::new(self.objectid, kind, u64::MAX));
        }
        Some(Self::new(self.objectid.checked_sub(1)?, u8::MAX, u64::MAX))
    }
}
