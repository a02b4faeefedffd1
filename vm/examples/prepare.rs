//! Prepares a guest: the default Debian kernel, a userland for a suite, and
//! a boot initramfs with the modules the guest needs; prints each with the
//! time it took (run twice to see the warm cache).
//!
//! `cargo run -p crtest-vm --example prepare [SUITE [PACKAGE...]]`
//! (default: bookworm with the harness's default packages). With
//! `CRTEST_KERNEL_SUITE=sid` the kernel comes from that suite instead of the
//! host's apt state.

use std::time::Instant;

use crtest_vm::apt_get::Apt;
use crtest_vm::cache::Cache;
use crtest_vm::initramfs::{boot_modules, build_initramfs, module_entries};
use crtest_vm::{kernel, userland};

/// Modules the guest loads before mounting its root and running criu.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "ext4",
    "crc32c",
    "9p",
    "9pnet_virtio",
    "nf_tables",
    "tun",
    "veth",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "unix_diag",
    "netlink_diag",
    "af_packet_diag",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let suite = args.first().map_or("bookworm", String::as_str);
    let packages: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        userland::DEFAULT_PACKAGES.to_vec()
    };
    let cache = Cache::from_env()?;

    let t = Instant::now();
    let k = match std::env::var("CRTEST_KERNEL_SUITE") {
        Ok(ks) => kernel::debian(
            &cache,
            &Apt::for_suite(&cache, &ks)?,
            kernel::DEFAULT_PACKAGE,
        )?,
        Err(_) => kernel::debian_default(&cache)?,
    };
    println!(
        "kernel {} from {:?}: {:.3} s",
        k.release,
        k.source,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let u = userland::build(&cache, suite, &packages)?;
    let size = std::fs::metadata(&u.image)?.len();
    println!(
        "userland {} ({} packages, image {} MiB at {}): {:.3} s",
        u.suite,
        u.packages.len(),
        size >> 20,
        u.image.display(),
        t.elapsed().as_secs_f64()
    );
    for p in &packages {
        println!(
            "  {p} {}",
            u.packages.get(*p).map_or("(missing)", String::as_str)
        );
    }

    let t = Instant::now();
    let mods = boot_modules(&k, MODULES)?;
    let names: Vec<&str> = mods.iter().map(|(n, _)| n.as_str()).collect();
    println!("modules: {}", names.join(" "));
    let out = std::env::temp_dir().join("crtest-prepare-initrd.cpio");
    build_initramfs(&out, &module_entries(mods))?;
    println!(
        "initramfs {} ({} KiB): {:.3} s",
        out.display(),
        std::fs::metadata(&out)?.len() >> 10,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
