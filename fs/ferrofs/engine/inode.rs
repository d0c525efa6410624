// SPDX-License-Identifier: GPL-2.0

//! Filesystem objects as items of the fs tree: inodes, directory entries, back references,
//! extended attributes and file extents, with their encodings.
//!
//! | key                                   | value                                        |
//! |---------------------------------------|----------------------------------------------|
//! | (ino, INODE, 0)                       | [`Inode`], [`INODE_SIZE`] bytes               |
//! | (ino, INODE_REF, parent)              | entries: index u64, name length u16, name    |
//! | (ino, INODE_EXTREF, hash(parent, name)) | entries: parent u64, index u64, name len u16, name |
//! | (ino, XATTR, hash(name))              | entries: name len u16, value len u16, name, value |
//! | (dir, DIR_ITEM, hash(name))           | entries: ino u64, type u8, name len u16, name |
//! | (dir, DIR_INDEX, index)               | one entry: ino u64, type u8, name len u16, name |
//! | (ino, EXTENT_DATA, file offset)       | [`Extent`]                                   |
//!
//! Names hash with CRC-32C; colliding names share an item. DIR_INDEX gives each entry of a
//! directory a position that never changes while it exists (readdir offsets), from the
//! directory's `next_index`, starting at 2 (0 and 1 are "." and "..").

use super::bytes;
use super::crc32c;
use super::error::{EngineError, EngineResult};
use super::key::Key;
use super::mem::FVec;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 256;

/// Item types of the fs tree.
pub mod kind {
    /// An inode.
    pub const INODE: u8 = 1;
    /// A name of an inode in a directory (back reference).
    pub const INODE_REF: u8 = 12;
    /// A name of an inode in a directory whose INODE_REF item is full (extended back
    /// reference), by hash of (directory, name).
    pub const INODE_EXTREF: u8 = 13;
    /// Extended attributes.
    pub const XATTR: u8 = 24;
    /// A piece of a long extended attribute value (see [`super::xattr_spill_key`]).
    pub const XATTR_SPILL: u8 = 25;
    /// Directory entries by name hash.
    pub const DIR_ITEM: u8 = 84;
    /// Directory entries by position.
    pub const DIR_INDEX: u8 = 96;
    /// A file extent.
    pub const EXTENT_DATA: u8 = 108;
    /// An unlinked inode still open: `(ORPHAN_OBJECTID, ORPHAN, ino)`, no value.
    pub const ORPHAN: u8 = 48;
}

/// Object id of orphan items in the fs tree (above every inode number).
pub const ORPHAN_OBJECTID: u64 = u64::MAX - 5;

/// The orphan item of inode `ino`.
pub fn orphan_key(ino: u64) -> Key {
    Key::new(ORPHAN_OBJECTID, kind::ORPHAN, ino)
}

/// Object id of data checksum items in the checksum tree.
pub const CSUM_OBJECTID: u64 = u64::MAX - 9;
/// Item type of data checksum items: (CSUM_OBJECTID, EXTENT_CSUM, block) -> the CRC-32Cs
/// (u32 each) of the data blocks from `block` on.
pub const EXTENT_CSUM: u8 = 128;
/// Most checksums in one item.
pub const CSUMS_PER_ITEM: usize = 240;
const _: () = assert!(CSUMS_PER_ITEM * 4 <= super::node::MAX_ITEM_DATA);

/// The key of the checksum item whose run starts at data block `block` (in the checksum
/// tree).
pub fn csum_key(block: u64) -> Key {
    Key::new(CSUM_OBJECTID, EXTENT_CSUM, block)
}

/// Longest name of a directory entry or extended attribute.
pub const NAME_MAX: usize = 255;
/// Longest extended attribute value (Linux's `XATTR_SIZE_MAX`).
pub const XATTR_VALUE_MAX: usize = 65536;
/// Longest value kept in the item of its name; a longer one, or one that would overflow
/// an item that names of the same hash share, is spilled to `XATTR_SPILL` items of
/// [`XATTR_SPILL_PART`] bytes (the last one shorter).
pub const XATTR_INLINE_MAX: usize = 700;
/// Bytes of a spilled value per `XATTR_SPILL` item.
pub const XATTR_SPILL_PART: usize = 960;
const _: () = assert!(XATTR_SPILL_PART <= super::node::MAX_ITEM_DATA);
/// Set in an attribute entry's name length: the value is spilled.
const XATTR_SPILLED: u16 = 0x8000;
/// Bytes after the name of a spilled entry: the value's length (u32) and its slot (u16).
const XATTR_SPILL_REF: usize = 6;
/// Longest symlink target (`PATH_MAX` less the terminating NUL).
pub const SYMLINK_MAX: usize = 4095;
/// Longest symlink target stored inline in one item; longer ones go to a data block.
pub const SYMLINK_INLINE_MAX: usize = 900;

/// File type bits of a mode.
pub const S_IFMT: u32 = 0o170_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// Block device.
pub const S_IFBLK: u32 = 0o060_000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010_000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140_000;

/// A point in time: seconds and nanoseconds since the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

/// Encoded size of an inode item.
pub const INODE_SIZE: usize = 128;

/// An inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inode {
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links (directories: entries that are directories, plus 2).
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Bytes of disk space the inode's extents reference.
    pub bytes: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last data change.
    pub mtime: Timespec,
    /// Last inode change.
    pub ctime: Timespec,
    /// Creation.
    pub btime: Timespec,
    /// Transaction that created it.
    pub generation: u64,
    /// Inode flags (FS_IOC_GETFLAGS bits).
    pub flags: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Directories: position of the next entry.
    pub next_index: u64,
}

impl Inode {
    /// The file type bits.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// Records a change of contents at `now` (mtime and ctime).
    pub fn touch(&mut self, now: Timespec) {
        self.mtime = now;
        self.ctime = now;
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }

    /// Encodes the inode.
    pub fn encode(&self) -> [u8; INODE_SIZE] {
        let mut b = [0u8; INODE_SIZE];
        let times = [self.atime, self.mtime, self.ctime, self.btime];
        // Every field is at a constant offset inside the fixed-size array.
        let _ = bytes::put_u32(&mut b, 0, self.mode).and_then(|()| {
            bytes::put_u32(&mut b, 4, self.uid)?;
            bytes::put_u32(&mut b, 8, self.gid)?;
            bytes::put_u32(&mut b, 12, self.nlink)?;
            bytes::put_u64(&mut b, 16, self.size)?;
            bytes::put_u64(&mut b, 24, self.bytes)?;
            for (i, t) in times.iter().enumerate() {
                let off = 32usize.saturating_add(i.saturating_mul(12));
                bytes::put(&mut b, off, &t.sec.to_le_bytes())?;
                bytes::put_u32(&mut b, off.saturating_add(8), t.nsec)?;
            }
            bytes::put_u64(&mut b, 80, self.generation)?;
            bytes::put_u64(&mut b, 88, self.flags)?;
            bytes::put_u64(&mut b, 96, self.rdev)?;
            bytes::put_u64(&mut b, 104, self.next_index)
        });
        b
    }

    /// Decodes inode `ino`; `block` names the tree block in errors.
    pub fn decode(ino: u64, data: &[u8], block: u64) -> EngineResult<Self> {
        let corrupt = EngineError::Corrupt {
            block,
            reason: "malformed inode item",
        };
        if data.len() != INODE_SIZE {
            return Err(corrupt);
        }
        let time = |i: usize| -> Option<Timespec> {
            let off = 32usize.saturating_add(i.saturating_mul(12));
            let sec = i64::from_le_bytes(bytes::array(data, off)?);
            let nsec = bytes::u32_at(data, off.saturating_add(8))?;
            (nsec < 1_000_000_000).then_some(Timespec { sec, nsec })
        };
        let parse = || -> Option<Inode> {
            Some(Inode {
                ino,
                mode: bytes::u32_at(data, 0)?,
                uid: bytes::u32_at(data, 4)?,
                gid: bytes::u32_at(data, 8)?,
                nlink: bytes::u32_at(data, 12)?,
                size: bytes::u64_at(data, 16)?,
                bytes: bytes::u64_at(data, 24)?,
                atime: time(0)?,
                mtime: time(1)?,
                ctime: time(2)?,
                btime: time(3)?,
                generation: bytes::u64_at(data, 80)?,
                flags: bytes::u64_at(data, 88)?,
                rdev: bytes::u64_at(data, 96)?,
                next_index: bytes::u64_at(data, 104)?,
            })
        };
        parse().ok_or(corrupt)
    }
}

/// Hash of a name, the offset of its DIR_ITEM or XATTR key.
pub fn name_hash(name: &[u8]) -> u64 {
    u64::from(crc32c::checksum(name))
}

/// Checks a directory entry name: 1 to 255 bytes, no '/' or NUL, not "." or "..".
pub fn check_name(name: &[u8]) -> EngineResult<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(EngineError::Invalid("invalid name"));
    }
    if name.len() > NAME_MAX {
        return Err(EngineError::NameTooLong);
    }
    Ok(())
}

/// A directory entry.
#[derive(Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The inode it names.
    pub ino: u64,
    /// Its file type (the `S_IF*` bits shifted right by 12).
    pub file_type: u8,
    /// Its position in the directory (DIR_INDEX offset).
    pub index: u64,
    /// The name.
    pub name: FVec<u8>,
}

/// Appends an entry (ino, type, name) to `out`.
pub fn encode_dirent(out: &mut FVec<u8>, ino: u64, file_type: u8, name: &[u8]) -> EngineResult<()> {
    let len = u16::try_from(name.len()).map_err(|_| EngineError::NameTooLong)?;
    out.try_extend_from_slice(&ino.to_le_bytes())?;
    out.try_push(file_type)?;
    out.try_extend_from_slice(&len.to_le_bytes())?;
    out.try_extend_from_slice(name)
}

/// Decodes the entries of a DIR_ITEM or DIR_INDEX value: (ino, type, name) each.
pub fn decode_dirents(data: &[u8], block: u64) -> EngineResult<FVec<(u64, u8, FVec<u8>)>> {
    let corrupt = EngineError::Corrupt {
        block,
        reason: "malformed directory entry",
    };
    let mut out = FVec::new();
    let mut off = 0usize;
    while off < data.len() {
        let ino = bytes::u64_at(data, off).ok_or(corrupt)?;
        let file_type = bytes::u8_at(data, off.saturating_add(8)).ok_or(corrupt)?;
        let len =
            u16::from_le_bytes(bytes::array(data, off.saturating_add(9)).ok_or(corrupt)?) as usize;
        let start = off.saturating_add(11);
        let name = data.get(start..start.saturating_add(len)).ok_or(corrupt)?;
        if name.is_empty() || name.len() > NAME_MAX {
            return Err(corrupt);
        }
        out.try_push((ino, file_type, FVec::try_from_slice(name)?))?;
        off = start.saturating_add(len);
    }
    Ok(out)
}

/// Appends a back reference (index, name) to `out`.
pub fn encode_ref(out: &mut FVec<u8>, index: u64, name: &[u8]) -> EngineResult<()> {
    let len = u16::try_from(name.len()).map_err(|_| EngineError::NameTooLong)?;
    out.try_extend_from_slice(&index.to_le_bytes())?;
    out.try_extend_from_slice(&len.to_le_bytes())?;
    out.try_extend_from_slice(name)
}

/// Hash of a name in directory `parent`, the offset of its INODE_EXTREF key.
pub fn extref_hash(parent: u64, name: &[u8]) -> u64 {
    u64::from(!crc32c::update(
        crc32c::update(!0, &parent.to_le_bytes()),
        name,
    ))
}

/// Appends an extended back reference (directory, index, name) to `out`.
pub fn encode_extref(out: &mut FVec<u8>, parent: u64, index: u64, name: &[u8]) -> EngineResult<()> {
    out.try_extend_from_slice(&parent.to_le_bytes())?;
    encode_ref(out, index, name)
}

/// Decodes the extended back references of an INODE_EXTREF value: (directory, index, name)
/// each.
pub fn decode_extrefs(data: &[u8], block: u64) -> EngineResult<FVec<(u64, u64, FVec<u8>)>> {
    let corrupt = EngineError::Corrupt {
        block,
        reason: "malformed extended inode back reference",
    };
    let mut out = FVec::new();
    let mut off = 0usize;
    while off < data.len() {
        let parent = bytes::u64_at(data, off).ok_or(corrupt)?;
        let (index, name, next) = ref_at(data, off.saturating_add(8), corrupt)?;
        out.try_push((parent, index, FVec::try_from_slice(name)?))?;
        off = next;
    }
    Ok(out)
}

/// Decodes the back references of an INODE_REF value: (index, name) each.
pub fn decode_refs(data: &[u8], block: u64) -> EngineResult<FVec<(u64, FVec<u8>)>> {
    let corrupt = EngineError::Corrupt {
        block,
        reason: "malformed inode back reference",
    };
    let mut out = FVec::new();
    let mut off = 0usize;
    while off < data.len() {
        let (index, name, next) = ref_at(data, off, corrupt)?;
        out.try_push((index, FVec::try_from_slice(name)?))?;
        off = next;
    }
    Ok(out)
}

/// The back reference (index u64, name length u16, name) at `off` of `data`, and the
/// offset after it; a name that is empty or longer than `NAME_MAX` is `corrupt`.
fn ref_at(data: &[u8], off: usize, corrupt: EngineError) -> EngineResult<(u64, &[u8], usize)> {
    let index = bytes::u64_at(data, off).ok_or(corrupt)?;
    let len = u16::from_le_bytes(bytes::array(data, off.saturating_add(8)).ok_or(corrupt)?);
    // Offsets within one item: the sums cannot overflow, `get` refuses a range past it.
    let start = off.saturating_add(10);
    let end = start.saturating_add(usize::from(len));
    let name = data.get(start..end).ok_or(corrupt)?;
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(corrupt);
    }
    Ok((index, name, end))
}

/// Where an extended attribute's value is.
#[derive(Debug, PartialEq, Eq)]
pub enum XattrValue {
    /// In the entry itself.
    Inline(FVec<u8>),
    /// In `XATTR_SPILL` items: `len` bytes, under slot `slot` of the name's hash.
    Spilled {
        /// Length of the value.
        len: u32,
        /// Tells the spilled values of names sharing one hash apart.
        slot: u16,
    },
}

/// One extended attribute of an XATTR item.
#[derive(Debug, PartialEq, Eq)]
pub struct XattrEntry {
    /// The attribute's name.
    pub name: FVec<u8>,
    /// Its value, or where it is.
    pub value: XattrValue,
}

/// Appends an extended attribute (name, value) to `out`, its value inline.
pub fn encode_xattr(out: &mut FVec<u8>, name: &[u8], value: &[u8]) -> EngineResult<()> {
    if name.len() > NAME_MAX {
        return Err(EngineError::NameTooLong);
    }
    let vlen = u16::try_from(value.len()).map_err(|_| EngineError::Range)?;
    out.try_extend_from_slice(&(name.len() as u16).to_le_bytes())?;
    out.try_extend_from_slice(&vlen.to_le_bytes())?;
    out.try_extend_from_slice(name)?;
    out.try_extend_from_slice(value)
}

/// Appends an extended attribute whose value of `len` bytes is spilled under `slot`.
pub fn encode_spilled_xattr(
    out: &mut FVec<u8>,
    name: &[u8],
    len: u32,
    slot: u16,
) -> EngineResult<()> {
    if name.len() > NAME_MAX {
        return Err(EngineError::NameTooLong);
    }
    let nlen = name.len() as u16 | XATTR_SPILLED;
    out.try_extend_from_slice(&nlen.to_le_bytes())?;
    out.try_extend_from_slice(&(XATTR_SPILL_REF as u16).to_le_bytes())?;
    out.try_extend_from_slice(name)?;
    out.try_extend_from_slice(&len.to_le_bytes())?;
    out.try_extend_from_slice(&slot.to_le_bytes())
}

/// Appends `entry` as [`decode_xattrs`] returned it.
pub fn encode_xattr_entry(out: &mut FVec<u8>, entry: &XattrEntry) -> EngineResult<()> {
    match &entry.value {
        XattrValue::Inline(v) => encode_xattr(out, &entry.name, v),
        XattrValue::Spilled { len, slot } => encode_spilled_xattr(out, &entry.name, *len, *slot),
    }
}

/// Decodes the attributes of an XATTR value.
pub fn decode_xattrs(data: &[u8], block: u64) -> EngineResult<FVec<XattrEntry>> {
    let corrupt = EngineError::Corrupt {
        block,
        reason: "malformed extended attribute item",
    };
    let mut out = FVec::new();
    let mut off = 0usize;
    while off < data.len() {
        let nlen = u16::from_le_bytes(bytes::array(data, off).ok_or(corrupt)?);
        let vlen =
            u16::from_le_bytes(bytes::array(data, off.saturating_add(2)).ok_or(corrupt)?) as usize;
        let spilled = nlen & XATTR_SPILLED != 0;
        let nlen = usize::from(nlen & !XATTR_SPILLED);
        if nlen == 0 || nlen > NAME_MAX {
            return Err(corrupt);
        }
        // Offsets within one item of at most a block: these sums cannot overflow, and
        // `get` refuses any range past the item.
        let ns = off.saturating_add(4);
        let vs = ns.saturating_add(nlen);
        let name = FVec::try_from_slice(data.get(ns..vs).ok_or(corrupt)?)?;
        let raw = data.get(vs..vs.saturating_add(vlen)).ok_or(corrupt)?;
        let value = if spilled {
            let (len, slot) = match raw {
                [a, b, c, d, e, f] => (
                    u32::from_le_bytes([*a, *b, *c, *d]),
                    u16::from_le_bytes([*e, *f]),
                ),
                _ => return Err(corrupt),
            };
            if len == 0 || len as usize > XATTR_VALUE_MAX {
                return Err(corrupt);
            }
            XattrValue::Spilled { len, slot }
        } else {
            XattrValue::Inline(FVec::try_from_slice(raw)?)
        };
        out.try_push(XattrEntry { name, value })?;
        off = vs.saturating_add(vlen);
    }
    Ok(out)
}

/// The key of piece `part` of the value spilled under `slot` by a name of hash `hash`
/// of inode `ino`: the pieces of one value are consecutive keys.
pub fn xattr_spill_key(ino: u64, hash: u64, slot: u16, part: u16) -> Key {
    let offset = (hash & 0xffff_ffff) << 32 | u64::from(slot) << 16 | u64::from(part);
    Key::new(ino, kind::XATTR_SPILL, offset)
}

/// How many `XATTR_SPILL` pieces a spilled value of `len` bytes has.
pub fn xattr_spill_parts(len: u32) -> u16 {
    // At most 65536 / 960 rounded up: 69.
    (len as usize).div_ceil(XATTR_SPILL_PART) as u16
}

/// What an extent holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentKind {
    /// Bytes stored in the item itself (symlink targets).
    Inline,
    /// Data blocks on disk.
    Regular,
    /// Blocks reserved by fallocate, reading as zeros until written.
    Prealloc,
}

/// A file extent: `len` bytes of the file at the item's offset, stored at `disk + offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Regular, preallocated or inline.
    pub kind: ExtentKind,
    /// Logical address of the start of the data (regular and prealloc).
    pub disk: u64,
    /// Bytes of file the extent covers (a multiple of 4096 for regular and prealloc).
    pub len: u64,
}

/// Longest extent: writes and fallocate never make longer ones, so a longer one is corrupt
/// (and would make checks walk absurd block ranges).
pub const MAX_EXTENT_BYTES: u64 = 128 << 20;

/// Encoded size of a regular or prealloc extent item.
pub const EXTENT_SIZE: usize = 24;

impl Extent {
    /// Encodes a regular or prealloc extent.
    pub fn encode(&self) -> [u8; EXTENT_SIZE] {
        let mut b = [0u8; EXTENT_SIZE];
        let kind = match self.kind {
            ExtentKind::Inline => 0u8,
            ExtentKind::Regular => 1,
            ExtentKind::Prealloc => 2,
        };
        let _ = bytes::put_u8(&mut b, 0, kind)
            .and_then(|()| bytes::put_u64(&mut b, 8, self.disk))
            .and_then(|()| bytes::put_u64(&mut b, 16, self.len));
        b
    }

    /// Decodes an extent item; inline extents carry their bytes after a 1-byte header.
    pub fn decode(data: &[u8], block: u64) -> EngineResult<Self> {
        let corrupt = EngineError::Corrupt {
            block,
            reason: "malformed file extent item",
        };
        match bytes::u8_at(data, 0) {
            Some(0) => Ok(Self {
                kind: ExtentKind::Inline,
                disk: 0,
                len: data.len().saturating_sub(1) as u64,
            }),
            Some(k @ (1 | 2)) if data.len() == EXTENT_SIZE => {
                let disk = bytes::u64_at(data, 8).ok_or(corrupt)?;
                let len = bytes::u64_at(data, 16).ok_or(corrupt)?;
                if len == 0
                    || len > MAX_EXTENT_BYTES
                    || len % 4096 != 0
                    || disk % 4096 != 0
                    || disk.checked_add(len).is_none()
                {
                    return Err(corrupt);
                }
                let kind = if k == 1 {
                    ExtentKind::Regular
                } else {
                    ExtentKind::Prealloc
                };
                Ok(Self { kind, disk, len })
            }
            _ => Err(corrupt),
        }
    }
}
