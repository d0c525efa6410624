// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the command-line tools.

use std::path::Path;

use ferrofs_engine::error::EngineError;
use ferrofs_engine::mem::FVec;

use crate::filedev::FileDev;

/// Opens every path as a device; the error names the path.
pub fn open_devices(paths: &[String], writable: bool) -> Result<FVec<FileDev>, String> {
    let mut devs = FVec::new();
    for p in paths {
        let dev = FileDev::open(Path::new(p), writable).map_err(|e| format!("{p}: {e}"))?;
        devs.try_push(dev)
            .map_err(|_| "out of memory".to_string())?;
    }
    Ok(devs)
}

/// Describes an engine error for a person.
pub fn describe(err: &EngineError) -> String {
    match err {
        EngineError::Corrupt { block, reason } => {
            format!("corrupt metadata at block {block}: {reason}")
        }
        EngineError::BadData { block } => {
            format!("data block {block}: checksum mismatch on every copy (errno 5)")
        }
        other => format!("{} (errno {})", other.message(), other.errno()),
    }
}

/// Formats a UUID in the usual 8-4-4-4-12 form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// Parses a UUID in the 8-4-4-4-12 form (or 32 hex digits).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// A random version-4 UUID from the kernel's random source.
pub fn random_uuid() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut u = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut u)?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

/// Human-readable size.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Where ferrofs's own superblock magic is (libblkid does not know ferrofs).
const FERROFS_MAGIC: (u64, &[u8]) = (65536 + 8, b"FERROFS\0");

/// What the device at `path` already holds, if anything: a ferrofs superblock, or a
/// filesystem, RAID member or partition table that util-linux's low-level probe
/// (`blkid -p`, libblkid) recognises. An error if the device cannot be probed.
pub fn find_signature(path: &str) -> Result<Option<String>, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let (offset, magic) = FERROFS_MAGIC;
    let mut buf = vec![0u8; magic.len()];
    if f.read_exact_at(&mut buf, offset).is_ok() && buf == magic {
        return Ok(Some("ferrofs filesystem".into()));
    }
    drop(f);
    let blkid = ["blkid", "/usr/sbin/blkid", "/sbin/blkid"]
        .iter()
        .find_map(|b| {
            std::process::Command::new(b)
                .args(["-p", "-o", "export", "--", path])
                .output()
                .ok()
        })
        .ok_or_else(|| {
            format!("cannot probe {path} for an existing filesystem: blkid (util-linux) not found")
        })?;
    let out = String::from_utf8_lossy(&blkid.stdout);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(str::to_owned)
    };
    match blkid.status.code() {
        // Found: a filesystem or RAID member (TYPE), else a partition table (PTTYPE).
        Some(0) => Ok(Some(match (field("TYPE"), field("PTTYPE")) {
            (Some(t), _) => format!("{t} filesystem"),
            (None, Some(t)) => format!("{t} partition table"),
            (None, None) => "known signature".into(),
        })),
        // Nothing found.
        Some(2) => Ok(None),
        _ => {
            let err = String::from_utf8_lossy(&blkid.stderr);
            if err.contains("ambivalent") {
                Ok(Some("signatures of more than one filesystem".into()))
            } else {
                Err(format!(
                    "cannot probe {path} for an existing filesystem: blkid -p failed ({}): {}",
                    blkid.status,
                    err.trim()
                ))
            }
        }
    }
}

/// The current time.
pub fn now() -> ferrofs_engine::inode::Timespec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ferrofs_engine::inode::Timespec {
        sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nsec: d.subsec_nanos(),
    }
}
