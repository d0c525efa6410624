// SPDX-License-Identifier: GPL-2.0

//! fsck.ferrofs: check (and repair) a ferrofs filesystem.
//!
//! Exit codes as e2fsck: 0 no errors, 1 errors corrected, 4 errors left uncorrected,
//! 8 operational error, 16 usage error.

use std::process::ExitCode;

use ferrofs_engine::error::EngineError;
use ferrofs_engine::fsck;
use ferrofs_engine::volume::{OpenOptions, Volume};
use ferrofs_host::cli;

const USAGE: &str = "\
usage: fsck.ferrofs [-n] [-y] DEV...

Check a ferrofs filesystem given all its devices: every copy of every metadata block
(checksum, identity, structure), tree order and balance, every reference count against
the references that exist, chunks against device extents, and space usage.

  -n          check only, never write
  -y          repair what can be repaired safely (the default without -n)
  -h, --help  show this help

Exit status: 0 clean, 1 errors corrected, 4 errors left, 8 operational error, 16 usage.
";

fn main() -> ExitCode {
    let mut read_only = false;
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "-n" => read_only = true,
            "-y" | "-p" | "-a" => {}
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!("fsck.ferrofs: unknown option {s}\n{USAGE}");
                return ExitCode::from(16);
            }
            _ => paths.push(a),
        }
    }
    if paths.is_empty() {
        eprintln!("fsck.ferrofs: no devices given\n{USAGE}");
        return ExitCode::from(16);
    }
    let devs = match cli::open_devices(&paths, !read_only) {
        Ok(d) => d,
        Err(msg) => {
            eprintln!("fsck.ferrofs: {msg}");
            return ExitCode::from(8);
        }
    };
    let mut vol = match Volume::open_with(
        devs,
        OpenOptions {
            degraded: false,
            read_only,
        },
    ) {
        Ok(v) => v,
        Err(err @ EngineError::Corrupt { .. }) => {
            eprintln!(
                "fsck.ferrofs: cannot open the filesystem: {}",
                cli::describe(&err)
            );
            return ExitCode::from(4);
        }
        Err(err) => {
            eprintln!(
                "fsck.ferrofs: cannot open the filesystem: {}",
                cli::describe(&err)
            );
            return ExitCode::from(8);
        }
    };
    let report = match fsck::check(&mut vol, !read_only) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("fsck.ferrofs: check stopped: {}", cli::describe(&err));
            return ExitCode::from(8);
        }
    };
    for p in report.problems.iter() {
        let dev = if p.devid != 0 {
            format!(" (device {})", p.devid)
        } else {
            String::new()
        };
        let fixed = if p.repaired { " [repaired]" } else { "" };
        println!("block {}{dev}: {}{fixed}", p.block, p.what);
    }
    let left = report.unrepaired();
    let fixed = report.problems.len() - left;
    println!(
        "{}: {} tree blocks, {} items checked; {} problems, {} repaired",
        paths.join(" "),
        report.blocks,
        report.items,
        report.problems.len(),
        fixed
    );
    if left > 0 {
        ExitCode::from(4)
    } else if fixed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
