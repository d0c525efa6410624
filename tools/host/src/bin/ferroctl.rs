// SPDX-License-Identifier: GPL-2.0

//! ferroctl: inspect and control ferrofs filesystems.

use std::process::ExitCode;

use ferrofs_engine::format::tree_id;
use ferrofs_engine::key::Key;

use ferrofs_engine::volume::{child_refs, OpenOptions, Volume};
use ferrofs_host::cli;
use ferrofs_host::filedev::FileDev;

const USAGE: &str = "\
usage: ferroctl COMMAND [ARGS...]

Commands:
  dump [--tree ID] [--nodes] DEV...
              print the superblock, the chunks, the fsync log area and the items of
              every tree (or of tree ID: 1 root, 2 space, 3 chunk, 4 dev, 5 fs,
              7 csum) of an unmounted filesystem; --nodes prints the tree blocks as
              well
  label PATH [NEWLABEL]
              print the label of the mounted ferrofs that PATH is on, or set it to
              NEWLABEL (at most 255 bytes; needs CAP_SYS_ADMIN): the generic
              FS_IOC_GETFSLABEL and FS_IOC_SETFSLABEL ioctls
  help        show this help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dump") => dump(&args[1..]),
        Some("label") => label(&args[1..]),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'\n{USAGE}")),
        None => Err(format!("no command given\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ferroctl: {msg}");
            ExitCode::from(1)
        }
    }
}

fn tree_name(id: u64) -> &'static str {
    match id {
        tree_id::ROOT => "root",
        tree_id::SPACE => "space",
        tree_id::CHUNK => "chunk",
        tree_id::DEV => "dev",
        tree_id::FS => "fs",
        tree_id::CSUM => "csum",
        _ => "?",
    }
}

fn dump(args: &[String]) -> Result<(), String> {
    let mut only = None;
    let mut nodes = false;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tree" => {
                only = Some(
                    it.next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or("--tree needs a tree id")?,
                )
            }
            "--nodes" => nodes = true,
            s if s.starts_with('-') => return Err(format!("dump: unknown option {s}")),
            _ => paths.push(a.clone()),
        }
    }
    if paths.is_empty() {
        return Err("dump: no devices given".into());
    }
    let devs = cli::open_devices(&paths, false)?;
    let mut vol: Volume<FileDev> = Volume::open_with(
        devs,
        OpenOptions {
            degraded: true,
            read_only: true,
        },
    )
    .map_err(|e| cli::describe(&e))?;
    let sb = vol
        .superblock()
        .try_clone()
        .map_err(|e| cli::describe(&e))?;
    println!(
        "superblock: uuid {} label '{}' generation {}",
        cli::format_uuid(&sb.fsid),
        String::from_utf8_lossy(sb.label_bytes()),
        sb.generation
    );
    println!(
        "  devices {} total {} used {}",
        sb.num_devices,
        cli::human(sb.total_bytes),
        cli::human(sb.bytes_used)
    );
    for c in vol.chunks() {
        println!(
            "chunk {} {} {} length {} stripes {:?}",
            c.logical,
            c.kind.name(),
            c.profile.name(),
            c.length,
            &c.stripes[..]
        );
    }
    if let Some(area) = vol.log_area() {
        println!("fsync log area {} blocks {}", area.start, area.blocks);
    }
    let trees = vol.trees().map_err(|e| cli::describe(&e))?;
    for &tree in trees.iter() {
        let id = tree.id();
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let Some(root) = vol.root(tree) else {
            continue;
        };
        println!("tree {id} ({}) root {}", tree_name(id), root.block);
        if nodes {
            let mut stack = vec![(root, 0usize)];
            while let Some((at, depth)) = stack.pop() {
                let b = at.block;
                let node = vol.read_node(&at, id).map_err(|e| cli::describe(&e))?;
                println!(
                    "  {:indent$}node {b} level {} generation {} entries {}",
                    "",
                    node.level,
                    node.generation,
                    node.len(),
                    indent = depth * 2
                );
                let children = child_refs(node).map_err(|e| cli::describe(&e))?;
                for c in children.iter().rev() {
                    stack.push((*c, depth + 1));
                }
            }
        }
        let mut items = vol.range(tree, Key::MIN, Key::MAX);
        while let Some((k, v)) = vol.next_in(&mut items).map_err(|e| cli::describe(&e))? {
            let shown: String = v.iter().take(32).map(|b| format!("{b:02x}")).collect();
            let more = if v.len() > 32 { "..." } else { "" };
            println!(
                "  ({} {} {}) len {} {shown}{more}",
                k.objectid,
                k.kind,
                k.offset,
                v.len()
            );
        }
    }
    Ok(())
}

/// Size of the generic label ioctls' buffer, NUL included (`FSLABEL_MAX`).
const FSLABEL_MAX: usize = 256;
/// `FS_IOC_GETFSLABEL`.
type GetLabel = rustix::ioctl::ReadOpcode<0x94, 49, [u8; FSLABEL_MAX]>;
/// `FS_IOC_SETFSLABEL`.
type SetLabel = rustix::ioctl::WriteOpcode<0x94, 50, [u8; FSLABEL_MAX]>;

fn label(args: &[String]) -> Result<(), String> {
    let (path, new) = match args {
        [path] => (path, None),
        [path, new] => (path, Some(new)),
        _ => return Err("label: want PATH [NEWLABEL]".into()),
    };
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    match new {
        None => {
            // SAFETY: FS_IOC_GETFSLABEL writes a FSLABEL_MAX-byte buffer.
            let got = unsafe {
                rustix::ioctl::ioctl(
                    &file,
                    rustix::ioctl::Getter::<GetLabel, [u8; FSLABEL_MAX]>::new(),
                )
            }
            .map_err(|e| format!("{path}: reading the label: {e}"))?;
            let len = got.iter().position(|&b| b == 0).unwrap_or(FSLABEL_MAX);
            println!("{}", String::from_utf8_lossy(&got[..len]));
        }
        Some(new) => {
            let bytes = new.as_bytes();
            if bytes.len() >= FSLABEL_MAX || bytes.contains(&0) {
                return Err(format!(
                    "label: '{new}' is too long (at most {} bytes) or holds a NUL",
                    FSLABEL_MAX - 1
                ));
            }
            let mut buf = [0u8; FSLABEL_MAX];
            buf[..bytes.len()].copy_from_slice(bytes);
            // SAFETY: FS_IOC_SETFSLABEL reads a FSLABEL_MAX-byte buffer.
            unsafe {
                rustix::ioctl::ioctl(
                    &file,
                    rustix::ioctl::Setter::<SetLabel, [u8; FSLABEL_MAX]>::new(buf),
                )
            }
            .map_err(|e| format!("{path}: setting the label: {e}"))?;
        }
    }
    Ok(())
}
