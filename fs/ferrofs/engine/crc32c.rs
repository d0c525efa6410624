// SPDX-License-Identifier: GPL-2.0

//! CRC-32C (Castagnoli), the checksum of every ferrofs metadata and data block.
//!
//! Computed by the platform: the kernel's `crc32c()` in the module (the CPU's CRC
//! instructions where the kernel has them), a hardware CRC-32C crate in the tools.

use crate::platform;

/// Continues a raw CRC-32C over `data`: no initial or final inversion, so runs can be chained.
pub fn update(crc: u32, data: &[u8]) -> u32 {
    platform::crc32c_update(crc, data)
}

/// The standard CRC-32C of `data` (initial value and final XOR `0xffffffff`).
pub fn checksum(data: &[u8]) -> u32 {
    !update(!0, data)
}
