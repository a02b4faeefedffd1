//! Fetches a Debian kernel into the cache and prints it with the time taken.
//!
//! `cargo run -p crtest-vm --example fetch_kernel [SUITE [PACKAGE]]`: without
//! SUITE the host's apt state and `linux-image-amd64`; with SUITE a private apt
//! state following that suite on the host's mirror.

use std::time::Instant;

use crtest_vm::apt_get::Apt;
use crtest_vm::cache::Cache;
use crtest_vm::kernel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cache = Cache::from_env()?;
    let t = Instant::now();
    let k = match args.first() {
        None => kernel::debian_default(&cache)?,
        Some(suite) => {
            let apt = Apt::for_suite(&cache, suite)?;
            let pkg = args.get(1).map_or(kernel::DEFAULT_PACKAGE, String::as_str);
            kernel::debian(&cache, &apt, pkg)?
        }
    };
    let secs = t.elapsed().as_secs_f64();
    println!("{}", serde_json::to_string_pretty(&k)?);
    println!("took {secs:.3} s");
    Ok(())
}
