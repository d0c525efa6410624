// SPDX-License-Identifier: GPL-2.0

//! Chunks: how the logical address space maps onto the devices.
//!
//! The logical address space is cut into chunks. Each chunk holds one kind of block (data,
//! metadata or system) and has a profile that says how its bytes are laid out on the
//! devices as *stripes*, one device extent each:
//!
//! | profile  | stripes                    | copies | layout                             |
//! |----------|----------------------------|--------|------------------------------------|
//! | single   | 1                          | 1      | linear                             |
//! | dup      | 2, on the same device      | 2      | each stripe a full copy            |
//! | raid0    | n >= 1 devices             | 1      | striped in `stripe_len` units      |
//! | raid1    | 2, distinct devices        | 2      | each stripe a full copy            |
//! | raid1c3  | 3, distinct devices        | 3      | each stripe a full copy            |
//! | raid10   | n >= 4 (even), distinct    | 2      | striped over n/2 mirrored pairs    |
//!
//! The mirrored pairs of a raid10 chunk are its stripes taken two at a time: stripes
//! `2i` and `2i + 1` hold the same bytes.

use super::bytes;
use super::error::{EngineError, EngineResult};
use super::mem::FVec;

/// Size of the striping unit of raid0 and raid10.
pub const STRIPE_LEN: u64 = 64 * 1024;

/// Stripes in each mirrored pair of a raid10 chunk (consecutive stripes).
const RAID10_MIRRORS: u64 = 2;

/// What a chunk stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// File data.
    Data,
    /// Tree blocks of every tree but the chunk tree.
    Metadata,
    /// Tree blocks of the chunk tree (found through the superblock).
    System,
}

/// How a chunk is laid out over the devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// One copy on one device.
    Single,
    /// Two copies on one device.
    Dup,
    /// One copy striped over several devices.
    Raid0,
    /// Two copies on two devices.
    Raid1,
    /// Three copies on three devices.
    Raid1c3,
    /// Two copies, striped over pairs of devices.
    Raid10,
}

const KIND_DATA: u64 = 1 << 0;
const KIND_SYSTEM: u64 = 1 << 1;
const KIND_METADATA: u64 = 1 << 2;
const PROFILE_SHIFT: u32 = 8;

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 3] = [Kind::Data, Kind::Metadata, Kind::System];

    fn bits(self) -> u64 {
        match self {
            Kind::Data => KIND_DATA,
            Kind::Metadata => KIND_METADATA,
            Kind::System => KIND_SYSTEM,
        }
    }

    /// The kind's name as tools print it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Metadata => "metadata",
            Kind::System => "system",
        }
    }
}

impl Profile {
    /// Every profile, in a fixed order.
    pub const ALL: [Profile; 6] = [
        Profile::Single,
        Profile::Dup,
        Profile::Raid0,
        Profile::Raid1,
        Profile::Raid1c3,
        Profile::Raid10,
    ];

    fn code(self) -> u64 {
        match self {
            Profile::Single => 0,
            Profile::Dup => 1,
            Profile::Raid0 => 2,
            Profile::Raid1 => 3,
            Profile::Raid1c3 => 4,
            Profile::Raid10 => 5,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// The profile's name, as `mkfs.ferrofs -d/-m` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Single => "single",
            Profile::Dup => "dup",
            Profile::Raid0 => "raid0",
            Profile::Raid1 => "raid1",
            Profile::Raid1c3 => "raid1c3",
            Profile::Raid10 => "raid10",
        }
    }

    /// Parses a profile name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Copies of every byte.
    pub fn copies(self) -> usize {
        match self {
            Profile::Single | Profile::Raid0 => 1,
            Profile::Dup | Profile::Raid1 | Profile::Raid10 => 2,
            Profile::Raid1c3 => 3,
        }
    }

    /// Fewest devices a chunk of this profile needs.
    pub fn min_devices(self) -> usize {
        match self {
            Profile::Single | Profile::Dup | Profile::Raid0 => 1,
            Profile::Raid1 => 2,
            Profile::Raid1c3 => 3,
            Profile::Raid10 => 4,
        }
    }

    /// Devices a new chunk uses when `available` devices have room.
    pub fn devices_for(self, available: usize) -> Option<usize> {
        if available < self.min_devices() {
            return None;
        }
        Some(match self {
            Profile::Single | Profile::Dup => 1,
            Profile::Raid0 => available,
            Profile::Raid1 | Profile::Raid1c3 => self.copies(),
            Profile::Raid10 => available & !1,
        })
    }

    /// Stripes (device extents) of a chunk over `devices` devices.
    pub fn stripes_for(self, devices: usize) -> usize {
        match self {
            Profile::Dup => 2,
            _ => devices,
        }
    }

    /// Stripes that hold distinct data (the rest are mirrors).
    pub fn data_stripes(self, stripes: usize) -> usize {
        match self {
            Profile::Single | Profile::Dup | Profile::Raid1 | Profile::Raid1c3 => 1,
            Profile::Raid0 => stripes,
            Profile::Raid10 => stripes / 2,
        }
    }

    /// Whether this profile survives the loss of one device.
    pub fn is_redundant_across_devices(self) -> bool {
        matches!(self, Profile::Raid1 | Profile::Raid1c3 | Profile::Raid10)
    }
}

/// Encodes a kind and profile as the on-disk chunk type.
pub fn type_bits(kind: Kind, profile: Profile) -> u64 {
    kind.bits() | (profile.code() << PROFILE_SHIFT)
}

/// Decodes the on-disk chunk type.
pub fn parse_type_bits(bits: u64) -> Option<(Kind, Profile)> {
    let kind = match bits & 0xff {
        KIND_DATA => Kind::Data,
        KIND_METADATA => Kind::Metadata,
        KIND_SYSTEM => Kind::System,
        _ => return None,
    };
    if bits >> (PROFILE_SHIFT + 8) != 0 {
        return None;
    }
    Some((kind, Profile::from_code((bits >> PROFILE_SHIFT) & 0xff)?))
}

/// One stripe of a chunk: a device extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stripe {
    /// The device.
    pub devid: u64,
    /// Byte offset of the extent on the device.
    pub physical: u64,
}

/// A chunk: a range of the logical address space and where it lives.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    /// First logical byte.
    pub logical: u64,
    /// Length in logical bytes.
    pub length: u64,
    /// What it stores.
    pub kind: Kind,
    /// How it is laid out.
    pub profile: Profile,
    /// Its device extents, each `stripe_size()` bytes long.
    pub stripes: FVec<Stripe>,
}

/// One copy of a mapped range: where to read or write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    /// The device.
    pub devid: u64,
    /// Byte offset on the device.
    pub physical: u64,
}

/// Encoded size of a chunk item's fixed part; each stripe adds [`STRIPE_ITEM_SIZE`].
pub const CHUNK_ITEM_SIZE: usize = 24;
/// Encoded size of one stripe in a chunk item.
pub const STRIPE_ITEM_SIZE: usize = 16;
/// Most stripes a chunk has (bounded by the item size limit of a leaf).
pub const MAX_STRIPES: usize = 32;

impl Chunk {
    /// Bytes of each device extent.
    pub fn stripe_size(&self) -> u64 {
        let data = self.profile.data_stripes(self.stripes.len()) as u64;
        self.length.checked_div(data).unwrap_or(0)
    }

    /// Whether `logical` lies in the chunk.
    pub fn contains(&self, logical: u64) -> bool {
        logical >= self.logical && logical.wrapping_sub(self.logical) < self.length
    }

    /// Checks the chunk's internal consistency (profile, stripe count, alignment).
    pub fn validate(&self) -> Result<(), &'static str> {
        let n = self.stripes.len();
        let ok = match self.profile {
            Profile::Single => n == 1,
            Profile::Dup => {
                n == 2
                    && self.stripes.first().map(|s| s.devid) == self.stripes.get(1).map(|s| s.devid)
            }
            Profile::Raid0 => n >= 1,
            Profile::Raid1 => n == 2,
            Profile::Raid1c3 => n == 3,
            Profile::Raid10 => n >= 4 && n % 2 == 0,
        };
        if !ok || n > MAX_STRIPES {
            return Err("chunk stripe count does not match its profile");
        }
        if self.length == 0 || self.logical.checked_add(self.length).is_none() {
            return Err("chunk length out of range");
        }
        let data = self.profile.data_stripes(n) as u64;
        let unit = if data > 1 {
            STRIPE_LEN.saturating_mul(data)
        } else {
            4096
        };
        if self.length.checked_rem(unit) != Some(0) || self.logical % 4096 != 0 {
            return Err("chunk is not aligned to its stripe unit");
        }
        // Every stripe's extent must be a whole number of blocks that fits in the device
        // address space: a stripe near the end of it would wrap in the mapping.
        let stripe_size = self.stripe_size();
        for stripe in self.stripes.iter() {
            if stripe.physical % 4096 != 0 || stripe.physical.checked_add(stripe_size).is_none() {
                return Err("chunk stripe out of the device address range");
            }
        }
        if matches!(
            self.profile,
            Profile::Raid1 | Profile::Raid1c3 | Profile::Raid10
        ) {
            for (i, a) in self.stripes.iter().enumerate() {
                if self
                    .stripes
                    .iter()
                    .skip(i.saturating_add(1))
                    .any(|b| b.devid == a.devid)
                {
                    return Err("mirrored chunk has two stripes on one device");
                }
            }
        }
        Ok(())
    }

    /// Whether every byte of the chunk has a copy on a device for which `present(devid)`
    /// holds: every stripe for single, dup and raid0, one stripe for raid1 and raid1c3, one
    /// stripe of every mirrored pair for raid10.
    pub fn is_readable(&self, present: impl Fn(u64) -> bool) -> bool {
        let up = |s: &Stripe| present(s.devid);
        match self.profile {
            Profile::Single | Profile::Dup | Profile::Raid0 => self.stripes.iter().all(up),
            Profile::Raid1 | Profile::Raid1c3 => self.stripes.iter().any(up),
            Profile::Raid10 => self
                .stripes
                .chunks(RAID10_MIRRORS as usize)
                .all(|pair| pair.iter().any(up)),
        }
    }

    /// Maps `len` bytes at `logical` (inside the chunk) to their copies. Returns the copies
    /// and how many of the bytes they cover: never past the end of a striping unit, so a
    /// caller walks a longer range in several steps.
    pub fn map(&self, logical: u64, len: u64) -> EngineResult<(FVec<Copy>, u64)> {
        let outside = EngineError::Invalid("address outside the chunk");
        if !self.contains(logical) || len == 0 {
            return Err(outside);
        }
        let offset = logical.wrapping_sub(self.logical);
        let room = self.length.saturating_sub(offset);
        let n = self.stripes.len() as u64;
        let mut copies = FVec::try_with_capacity(self.profile.copies())?;
        let at = |i: u64, phys_off: u64| -> EngineResult<Copy> {
            let s = self.stripes.get(i as usize).ok_or(EngineError::Corrupt {
                block: self.logical,
                reason: "chunk stripe index out of range",
            })?;
            Ok(Copy {
                devid: s.devid,
                physical: s
                    .physical
                    .checked_add(phys_off)
                    .ok_or(EngineError::Corrupt {
                        block: self.logical,
                        reason: "chunk stripe address overflows",
                    })?,
            })
        };
        let covered = match self.profile {
            Profile::Single | Profile::Dup | Profile::Raid1 | Profile::Raid1c3 => {
                for i in 0..n {
                    copies.try_push(at(i, offset)?)?;
                }
                len.min(room)
            }
            Profile::Raid0 | Profile::Raid10 => {
                let (groups, per_group) = if self.profile == Profile::Raid10 {
                    (n / RAID10_MIRRORS, RAID10_MIRRORS)
                } else {
                    (n, 1)
                };
                let unit = offset / STRIPE_LEN;
                let in_unit = offset % STRIPE_LEN;
                let group = unit.checked_rem(groups).ok_or(EngineError::Corrupt {
                    block: self.logical,
                    reason: "striped chunk without stripes",
                })?;
                let row = unit.checked_div(groups).unwrap_or(0);
                let phys_off = row.saturating_mul(STRIPE_LEN).saturating_add(in_unit);
                for m in 0..per_group {
                    copies.try_push(at(
                        group.saturating_mul(per_group).saturating_add(m),
                        phys_off,
                    )?)?;
                }
                len.min(STRIPE_LEN.saturating_sub(in_unit)).min(room)
            }
        };
        Ok((copies, covered))
    }

    /// Encodes the chunk as a chunk item (the key carries `logical`).
    pub fn encode(&self, out: &mut FVec<u8>) -> EngineResult<()> {
        let n = self.stripes.len();
        let size = CHUNK_ITEM_SIZE.saturating_add(n.saturating_mul(STRIPE_ITEM_SIZE));
        let mut buf = super::mem::zeroed_bytes(size)?;
        let ok = bytes::put_u64(&mut buf, 0, self.length)
            .and_then(|()| bytes::put_u64(&mut buf, 8, type_bits(self.kind, self.profile)))
            .and_then(|()| bytes::put_u32(&mut buf, 16, u32::try_from(n).ok()?))
            .is_some();
        let mut off = CHUNK_ITEM_SIZE;
        let mut ok = ok;
        for s in self.stripes.iter() {
            ok = ok
                && bytes::put_u64(&mut buf, off, s.devid).is_some()
                && bytes::put_u64(&mut buf, off.saturating_add(8), s.physical).is_some();
            off = off.saturating_add(STRIPE_ITEM_SIZE);
        }
        if !ok {
            return Err(EngineError::Invalid("chunk does not encode"));
        }
        out.try_append(&mut buf)
    }

    /// Decodes a chunk item for the chunk at `logical`; `block` names the tree block (or
    /// superblock) it came from in errors.
    pub fn decode(logical: u64, data: &[u8], block: u64) -> EngineResult<(Self, usize)> {
        let corrupt = |reason| EngineError::Corrupt { block, reason };
        let length = bytes::u64_at(data, 0).ok_or(corrupt("short chunk item"))?;
        let bits = bytes::u64_at(data, 8).ok_or(corrupt("short chunk item"))?;
        let n = bytes::u32_at(data, 16).ok_or(corrupt("short chunk item"))? as usize;
        let (kind, profile) = parse_type_bits(bits).ok_or(corrupt("unknown chunk type"))?;
        if n == 0 || n > MAX_STRIPES {
            return Err(corrupt("chunk stripe count out of range"));
        }
        let mut stripes = FVec::try_with_capacity(n)?;
        let mut off = CHUNK_ITEM_SIZE;
        for _ in 0..n {
            stripes.try_push(Stripe {
                devid: bytes::u64_at(data, off).ok_or(corrupt("short chunk item"))?,
                physical: bytes::u64_at(data, off.saturating_add(8))
                    .ok_or(corrupt("short chunk item"))?,
            })?;
            off = off.saturating_add(STRIPE_ITEM_SIZE);
        }
        let chunk = Self {
            logical,
            length,
            kind,
            profile,
            stripes,
        };
        chunk.validate().map_err(corrupt)?;
        Ok((chunk, off))
    }
}
