// SPDX-License-Identifier: GPL-2.0

//! Engine errors and the errno values they map to.

/// Linux errno numbers the engine reports (the same on every architecture ferrofs supports).
pub mod errno {
    /// I/O error.
    pub const EIO: i32 = 5;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Structure needs cleaning: corrupt metadata.
    pub const EUCLEAN: i32 = 117;
}

/// Why an engine operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// On-disk metadata failed a check. `block` is the byte address of the block.
    Corrupt {
        /// Byte address of the damaged block.
        block: u64,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The device reported an I/O error.
    Io,
    /// An allocation failed.
    NoMemory,
    /// No free space for the operation.
    NoSpace,
    /// The caller passed something invalid.
    Invalid(&'static str),
}

impl EngineError {
    /// The positive errno value for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Corrupt { .. } => errno::EUCLEAN,
            Self::Io => errno::EIO,
            Self::NoMemory => errno::ENOMEM,
            Self::NoSpace => errno::ENOSPC,
            Self::Invalid(_) => errno::EINVAL,
        }
    }

    /// A short human-readable description.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Corrupt { reason, .. } => reason,
            Self::Io => "I/O error",
            Self::NoMemory => "out of memory",
            Self::NoSpace => "no space left",
            Self::Invalid(reason) => reason,
        }
    }
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;
