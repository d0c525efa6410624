// SPDX-License-Identifier: GPL-2.0

//! Engine errors and the errno values they map to.

/// Linux errno numbers the engine reports (the same on every architecture ferrofs supports).
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Not a directory.
    pub const ENOTDIR: i32 = 20;
    /// Is a directory.
    pub const EISDIR: i32 = 21;
    /// No such device (fallocate on a special file).
    pub const ENODEV: i32 = 19;
    /// File too large.
    pub const EFBIG: i32 = 27;
    /// Too many links.
    pub const EMLINK: i32 = 31;
    /// Result out of range (buffer too small, value too large).
    pub const ERANGE: i32 = 34;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Directory not empty.
    pub const ENOTEMPTY: i32 = 39;
    /// No data available (no such extended attribute).
    pub const ENODATA: i32 = 61;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
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
    /// Read-only filesystem.
    pub const EROFS: i32 = 30;
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
    /// A data block failed its checksum on every copy (`EIO`, as a bad sector would).
    /// `block` is its byte address.
    BadData {
        /// Byte address of the block.
        block: u64,
    },
    /// The device reported an I/O error.
    Io,
    /// An allocation failed.
    NoMemory,
    /// No free space for the operation.
    NoSpace,
    /// The caller passed something invalid.
    Invalid(&'static str),
    /// Not permitted for this kind of object.
    NotPermitted,
    /// No such file or directory.
    NotFound,
    /// The name exists already.
    Exists,
    /// A directory was needed.
    NotDir,
    /// A non-directory was needed.
    IsDir,
    /// The directory is not empty.
    NotEmpty,
    /// A name is longer than allowed.
    NameTooLong,
    /// A value or buffer is out of range.
    Range,
    /// No such extended attribute.
    NoData,
    /// The link count would overflow.
    TooManyLinks,
    /// The file would grow past the largest size.
    FileTooBig,
    /// The operation or flag is not supported.
    NotSupported,
    /// Not possible on this kind of file.
    NoDevice,
    /// The filesystem is read-only: mounted so, or turned so by an aborted transaction.
    ReadOnly,
}

impl EngineError {
    /// The positive errno value for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Corrupt { .. } => errno::EUCLEAN,
            Self::BadData { .. } | Self::Io => errno::EIO,
            Self::NoMemory => errno::ENOMEM,
            Self::NoSpace => errno::ENOSPC,
            Self::Invalid(_) => errno::EINVAL,
            Self::NotPermitted => errno::EPERM,
            Self::NotFound => errno::ENOENT,
            Self::Exists => errno::EEXIST,
            Self::NotDir => errno::ENOTDIR,
            Self::IsDir => errno::EISDIR,
            Self::NotEmpty => errno::ENOTEMPTY,
            Self::NameTooLong => errno::ENAMETOOLONG,
            Self::Range => errno::ERANGE,
            Self::NoData => errno::ENODATA,
            Self::TooManyLinks => errno::EMLINK,
            Self::FileTooBig => errno::EFBIG,
            Self::NotSupported => errno::EOPNOTSUPP,
            Self::NoDevice => errno::ENODEV,
            Self::ReadOnly => errno::EROFS,
        }
    }

    /// A short human-readable description.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Corrupt { reason, .. } => reason,
            Self::BadData { .. } => "data checksum mismatch on every copy",
            Self::Io => "I/O error",
            Self::NoMemory => "out of memory",
            Self::NoSpace => "no space left",
            Self::Invalid(reason) => reason,
            Self::NotPermitted => "operation not permitted",
            Self::NotFound => "no such file or directory",
            Self::Exists => "file exists",
            Self::NotDir => "not a directory",
            Self::IsDir => "is a directory",
            Self::NotEmpty => "directory not empty",
            Self::NameTooLong => "name too long",
            Self::Range => "out of range",
            Self::NoData => "no such attribute",
            Self::TooManyLinks => "too many links",
            Self::FileTooBig => "file too large",
            Self::NotSupported => "operation not supported",
            Self::NoDevice => "not supported on this kind of file",
            Self::ReadOnly => "read-only filesystem",
        }
    }
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;
