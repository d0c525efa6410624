// SPDX-License-Identifier: GPL-2.0

//! The VFS layer: typed, safe wrappers over the kernel's filesystem API, and the operation
//! tables the kernel calls.
//!
//! All `unsafe` code of ferrofs lives under this module; the filesystem logic above it
//! (`fsops`) and the engine below it are safe Rust.

pub(crate) mod bindings;
pub(crate) mod bio;
pub(crate) mod blockdev;
pub(crate) mod buffer;
pub(crate) mod dentry;
pub(crate) mod error;
pub(crate) mod folio;
pub(crate) mod fs_type;
pub(crate) mod inode;
pub(crate) mod super_block;
pub(crate) mod tables;
pub(crate) mod thread;
