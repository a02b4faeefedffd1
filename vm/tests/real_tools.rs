//! Checks against the real tools and the real Debian archive (through the
//! host's apt configuration). Ignored by default: they download hundreds of
//! MiB and need root for mmdebstrap. Run with
//! `cargo test -p crtest-vm --test real_tools -- --ignored --test-threads=1`;
//! they share the cache named by `CRTEST_CACHE` (or the default one).

use std::process::Command;
use std::time::Instant;

use crtest_vm::cache::Cache;
use crtest_vm::initramfs::boot_modules;
use crtest_vm::userland::{self, UserlandError};
use crtest_vm::{kernel, KernelSource};

fn cache() -> Cache {
    Cache::from_env().expect("a cache location")
}

#[test]
#[ignore = "downloads the Debian kernel package"]
fn debian_default_kernel_is_fetched_and_cached() {
    let c = cache();
    let k = kernel::debian_default(&c).unwrap();
    assert!(matches!(k.source, KernelSource::Debian { .. }));
    assert!(k.bzimage.is_file());
    let m = k.modules_dir.clone().expect("modules");
    assert!(m.join("modules.dep").is_file(), "depmod ran");
    let cfg = k.config_map().unwrap().expect("config");
    assert!(cfg["CONFIG_CHECKPOINT_RESTORE"].is_enabled());

    let t = Instant::now();
    let again = kernel::debian_default(&c).unwrap();
    assert_eq!(again, k);
    assert!(
        t.elapsed().as_secs_f64() < 1.0,
        "warm hit took {:?}",
        t.elapsed()
    );

    let mods = boot_modules(&k, &["virtio_blk", "ext4", "9pnet_virtio"]).unwrap();
    assert!(mods
        .iter()
        .any(|(n, b)| n.ends_with("-ext4.ko") && b.starts_with(b"\x7fELF")));
}

#[test]
#[ignore = "runs mmdebstrap (root, network)"]
fn bookworm_userland_has_criu_and_is_cached() {
    let c = cache();
    let u = userland::build(&c, "bookworm", userland::DEFAULT_PACKAGES).unwrap();
    assert!(
        u.packages["criu"].starts_with("3.17"),
        "{:?}",
        u.packages.get("criu")
    );
    for p in userland::DEFAULT_PACKAGES {
        assert!(u.packages.contains_key(*p), "{p} installed");
    }
    let out = Command::new("debugfs")
        .args(["-R", "ls -l /usr/sbin"])
        .arg(&u.image)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("criu"));

    let t = Instant::now();
    let again = userland::build(&c, "bookworm", userland::DEFAULT_PACKAGES).unwrap();
    assert_eq!(again, u);
    assert!(
        t.elapsed().as_secs_f64() < 1.0,
        "warm hit took {:?}",
        t.elapsed()
    );
}

#[test]
#[ignore = "runs mmdebstrap (root, network)"]
fn unknown_suite_is_named() {
    let t = tempfile::tempdir().unwrap();
    let c = Cache::new(t.path());
    let err = userland::build(&c, "crtest-no-such-suite", &["criu"]).unwrap_err();
    assert!(matches!(err, UserlandError::Bootstrap { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`crtest-no-such-suite`"), "{msg}");
    eprintln!("{msg}");
}
