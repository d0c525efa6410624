// SPDX-License-Identifier: GPL-2.0

//! The VFS layer: typed, safe wrappers over the kernel's filesystem API.
//!
//! All `unsafe` code of ferrofs lives under this module; the filesystem logic above it and
//! the engine below it are safe Rust.

pub(crate) mod bindings;
pub(crate) mod buffer;
pub(crate) mod error;
pub(crate) mod fs_type;
pub(crate) mod super_block;
