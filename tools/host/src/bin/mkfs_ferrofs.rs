// SPDX-License-Identifier: GPL-2.0

//! mkfs.ferrofs: make a ferrofs filesystem over one or more devices.

use std::process::ExitCode;

use ferrofs_engine::chunk::Profile;
use ferrofs_engine::fs::Fs;
use ferrofs_engine::volume::MkfsOptions;
use ferrofs_host::cli;

const USAGE: &str = "\
usage: mkfs.ferrofs [-d PROFILE] [-m PROFILE] [-L LABEL] [-U UUID] [-f] DEV...

Make a ferrofs filesystem over the devices (block devices or image files).

  -d PROFILE  data profile: single, dup, raid0, raid1, raid1c3, raid10
              (default: single)
  -m PROFILE  metadata profile, same choices (default: dup on one device,
              raid1 on more)
  -L LABEL    filesystem label (at most 255 bytes)
  -U UUID     filesystem UUID (default: random)
  -f          overwrite devices that hold a filesystem, RAID member or partition
              table (found by ferrofs's own magic and by blkid -p); without it,
              such a device is refused
  -h, --help  show this help
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("mkfs.ferrofs: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut data, mut metadata, mut label, mut uuid, mut force) =
        (None, None, String::new(), None, false);
    let mut paths = Vec::new();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "-d" => data = Some(parse_profile(&value("-d")?)?),
            "-m" => metadata = Some(parse_profile(&value("-m")?)?),
            "-L" => label = value("-L")?,
            "-U" => uuid = Some(cli::parse_uuid(&value("-U")?).ok_or("-U: not a UUID")?),
            "-f" => force = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => paths.push(a),
        }
    }
    if paths.is_empty() {
        return Err(format!("no devices given\n{USAGE}"));
    }
    // With -f nothing is probed, so a device blkid cannot read can still be formatted.
    if !force {
        for p in &paths {
            let found =
                cli::find_signature(p).map_err(|e| format!("{e}; use -f to format it anyway"))?;
            if let Some(sig) = found {
                return Err(format!(
                    "{p} appears to contain a {sig}; use -f to overwrite it"
                ));
            }
        }
    }
    let data = data.unwrap_or(Profile::Single);
    let metadata = metadata.unwrap_or(if paths.len() > 1 {
        Profile::Raid1
    } else {
        Profile::Dup
    });
    let fsid = match uuid {
        Some(u) => u,
        None => cli::random_uuid().map_err(|e| format!("cannot make a UUID: {e}"))?,
    };
    let mut dev_uuids = Vec::new();
    for _ in &paths {
        dev_uuids.push(cli::random_uuid().map_err(|e| format!("cannot make a UUID: {e}"))?);
    }
    let devs = cli::open_devices(&paths, true)?;
    let opts = MkfsOptions {
        data,
        metadata,
        label: label.as_bytes(),
        fsid,
        dev_uuids: &dev_uuids,
    };
    let fs = Fs::mkfs(devs, &opts, cli::now()).map_err(|e| cli::describe(&e))?;
    let vol = &fs.vol;
    println!("Label:       {label}");
    println!("UUID:        {}", cli::format_uuid(&fsid));
    println!("Data:        {}", data.name());
    println!("Metadata:    {}", metadata.name());
    println!("Devices:");
    for (slot, path) in vol.devices().iter().zip(&paths) {
        println!("  {:>3}  {:>12}  {path}", slot.devid, cli::human(slot.size));
    }
    println!("Chunks:");
    for c in vol.chunks() {
        let stripes: Vec<String> = c
            .stripes
            .iter()
            .map(|s| format!("{}@{}", s.devid, s.physical))
            .collect();
        println!(
            "  {:<8} {:<7} logical {:>12}  size {:>10}  stripes {}",
            c.kind.name(),
            c.profile.name(),
            c.logical,
            cli::human(c.length),
            stripes.join(" ")
        );
    }
    Ok(())
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::parse(s).ok_or(format!(
        "unknown profile '{s}' (single, dup, raid0, raid1, raid1c3, raid10)"
    ))
}
