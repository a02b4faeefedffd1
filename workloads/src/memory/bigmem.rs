//! `bigmem`: a large anonymous region whose every page is checked.
//!
//! Maps `--mib` MiB of private anonymous memory. The first seven eighths are written, page
//! by page, each with its own pattern (seeded by the page number and a generation); the
//! last eighth is never touched and must read as zeros. Every tick the workload checks the
//! next `--pages-per-tick` written pages and rewrites them with their next generation, so
//! memory keeps getting dirty between a pre-dump and the dump. On SIGTERM it checks every
//! page and reports how many differ and where the first ones differ.

use crate::args::{Args, Opt};
use crate::memory::{describe_bad_pages, fill_page, page_diff, BadPage, PAGE};
use crate::protocol::Workload;
use crate::steady;
use crate::sys::{self, Mapping};
use nix::libc;

/// Program name.
pub const NAME: &str = "bigmem";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[
    steady::TICK_MS,
    Opt {
        name: "mib",
        metavar: "MIB",
        default: 64,
        min: 1,
        max: 1536,
        help: "size of the region",
    },
    Opt {
        name: "pages-per-tick",
        metavar: "N",
        default: 16,
        min: 0,
        max: 65536,
        help: "pages checked and rewritten every tick",
    },
];

const REGION: u64 = 1;

struct State {
    map: Mapping,
    gens: Vec<u32>,
    pages: usize,
    next: usize,
    scratch: Vec<u8>,
}

impl State {
    fn page(&mut self, i: usize) -> &mut [u8] {
        &mut self.map.bytes_mut()[i * PAGE..(i + 1) * PAGE]
    }

    fn check_page(&mut self, i: usize) -> Option<BadPage> {
        let mut want = std::mem::take(&mut self.scratch);
        if i < self.gens.len() {
            fill_page(&mut want, REGION, i, self.gens[i]);
        } else {
            want.fill(0);
        }
        let bad = page_diff(i, &want, self.page(i));
        self.scratch = want;
        bad
    }

    fn tick(&mut self, count: usize) -> Result<(), String> {
        let written = self.gens.len();
        let mut bad = Vec::new();
        for _ in 0..count.min(written) {
            let i = self.next;
            self.next = (self.next + 1) % written;
            if let Some(b) = self.check_page(i) {
                bad.push(b);
                continue;
            }
            self.gens[i] += 1;
            let gen = self.gens[i];
            fill_page(self.page(i), REGION, i, gen);
        }
        self.verdict(&bad)
    }

    /// Pass, or the pages that differ described.
    fn verdict(&self, bad: &[BadPage]) -> Result<(), String> {
        if bad.is_empty() {
            return Ok(());
        }
        Err(describe_bad_pages(
            "anonymous region",
            self.map.addr(),
            self.pages,
            bad,
        ))
    }

    fn check_all(&mut self) -> Result<(), String> {
        let bad: Vec<BadPage> = (0..self.pages).filter_map(|i| self.check_page(i)).collect();
        self.verdict(&bad)
    }
}

fn setup(mib: usize) -> Result<State, String> {
    let pages = mib * 1024 * 1024 / PAGE;
    let written = pages - (pages / 8).max(1);
    let map = sys::mmap(
        pages * PAGE,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
        None,
        0,
    )
    .map_err(|e| format!("mmap of {mib} MiB: {e}"))?;
    let mut st = State {
        map,
        gens: vec![0; written],
        pages,
        next: 0,
        scratch: vec![0; PAGE],
    };
    for i in 0..written {
        fill_page(st.page(i), REGION, i, 0);
    }
    Ok(st)
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mib = args.get("mib") as usize;
    let per_tick = args.get("pages-per-tick") as usize;
    let mut st = setup(mib).unwrap_or_else(|e| wl.setup_failed(&e));
    let written = st.gens.len();
    let detail = format!(
        "region={:#x} ({mib} MiB: {written} pages written with patterns, {} zero pages); {per_tick} pages rewritten per tick",
        st.map.addr(),
        st.pages - written
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.tick(per_tick))?;
    st.check_all()?;
    let rewrites: u64 = st.gens.iter().map(|&g| g as u64).sum();
    Ok(format!(
        "all {} pages of {mib} MiB intact ({written} patterned, {} zero) after {ticks} ticks and {rewrites} page rewrites",
        st.pages,
        st.pages - written
    ))
}
