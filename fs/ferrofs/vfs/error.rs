// SPDX-License-Identifier: GPL-2.0

//! Mapping of engine errors and errno values missing from `kernel::error::code`.

use kernel::error::Error;

use crate::engine::error::EngineError;

/// Builds an [`Error`] from a positive errno constant of the uAPI.
fn errno(value: u32) -> Error {
    // The constants are small positive numbers; an out-of-range one degrades to EINVAL.
    let negative = i32::try_from(value).map_or(-(kernel::bindings::EINVAL as i32), |v| -v);
    Error::from_errno(negative)
}

/// `EOPNOTSUPP`: operation not supported (not in the 6.12 `kernel::error::code` list).
pub(crate) fn eopnotsupp() -> Error {
    errno(kernel::bindings::EOPNOTSUPP)
}

/// `ENAMETOOLONG`: file name too long.
pub(crate) fn enametoolong() -> Error {
    errno(kernel::bindings::ENAMETOOLONG)
}

/// Converts an engine error to the errno the VFS returns for it.
pub(crate) fn from_engine(err: EngineError) -> Error {
    Error::from_errno(-err.errno())
}

/// `ESTALE`: a file handle names an inode that is gone.
pub(crate) fn estale() -> Error {
    errno(kernel::bindings::ESTALE)
}
