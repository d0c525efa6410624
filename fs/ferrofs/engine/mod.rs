// SPDX-License-Identifier: GPL-2.0

//! The ferrofs engine: everything that decides what is on disk.
//!
//! These files are compiled twice: into the kernel module (as `crate::engine` of
//! `ferrofs_rs.rs`) and into the userspace tools (as `crate::engine` of the
//! `ferrofs-engine` crate in `tools/`). They therefore depend on neither `kernel` nor `std`,
//! only on `core`, contain no `unsafe`, and never panic on any input: every failure is an
//! [`error::EngineError`] that maps to an errno.

#![forbid(unsafe_code)]
// No panics on any input: checked indexing and arithmetic only (the kernel builds with
// overflow checks, so an overflow would be a panic there).
#![deny(
    clippy::arithmetic_side_effects,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::unreachable,
    clippy::unwrap_used
)]

pub mod btree;
pub mod bytes;
pub mod chunk;
pub mod crc32c;
pub mod dev;
pub mod error;
pub mod format;
pub mod fs;
pub mod fsck;
pub mod inode;
pub mod key;
pub mod map;
pub mod mem;
pub mod node;
pub mod spacemap;
pub mod volume;
