// SPDX-License-Identifier: GPL-2.0

//! The userspace host of the ferrofs engine: block devices over files and memory, a
//! crash-simulating device, and the shared code of the tools.

#![forbid(unsafe_code)]

pub mod cli;
pub mod filedev;
pub mod memdev;
