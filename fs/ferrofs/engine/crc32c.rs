// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of every ferrofs metadata and data block.
//!
//! Table-driven, eight bytes per step ("slicing-by-8"); the tables are computed at compile
//! time, so there is nothing to initialise and nothing to allocate.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

// Only evaluated at compile time (for `TABLES`), where an out-of-range index or an overflow
// would be a build error, never a run-time panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn make_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][n] = crc;
        n += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut n = 0;
        while n < 256 {
            let prev = tables[t - 1][n];
            tables[t][n] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            n += 1;
        }
        t += 1;
    }
    tables
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Looks up table `t` at the low byte of `v`. `t` is always below 8 at every call site and a
/// byte indexes 256 entries, so the lookup cannot fail; `get` keeps it free of panics anyway.
#[inline(always)]
fn lookup(t: usize, v: u32) -> u32 {
    TABLES
        .get(t)
        .and_then(|table| table.get((v & 0xff) as usize))
        .copied()
        .unwrap_or(0)
}

/// Continues a raw CRC-32C over `data`: no initial or final inversion, so runs can be chained.
pub fn update(mut crc: u32, data: &[u8]) -> u32 {
    let mut rest = data;
    while let Some((bytes, tail)) = rest.split_first_chunk::<8>() {
        let [b0, b1, b2, b3, b4, b5, b6, b7] = *bytes;
        let lo = u32::from_le_bytes([b0, b1, b2, b3]) ^ crc;
        let hi = u32::from_le_bytes([b4, b5, b6, b7]);
        crc = lookup(7, lo)
            ^ lookup(6, lo >> 8)
            ^ lookup(5, lo >> 16)
            ^ lookup(4, lo >> 24)
            ^ lookup(3, hi)
            ^ lookup(2, hi >> 8)
            ^ lookup(1, hi >> 16)
            ^ lookup(0, hi >> 24);
        rest = tail;
    }
    for &byte in rest {
        crc = (crc >> 8) ^ lookup(0, crc ^ u32::from(byte));
    }
    crc
}

/// The standard CRC-32C of `data` (initial value and final XOR `0xffffffff`).
pub fn checksum(data: &[u8]) -> u32 {
    !update(!0, data)
}
