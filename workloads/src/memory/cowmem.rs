//! `cowmem`: private memory shared copy-on-write after `fork`, and shared anonymous memory,
//! across three processes.
//!
//! The workload fills a 64-page private region (four quarters), maps a 16-page shared
//! anonymous region, then forks helpers A and B. Each process rewrites "its" quarter of
//! the private region (A the second, B the third, the workload the fourth) and writes its
//! own page of the shared region (0, 1, 2). After that, every process must see the
//! untouched first quarter and the others' quarters as they were before the fork (the
//! copies are private), its own quarter as it wrote it, and all three written pages of the
//! shared region.
//!
//! Every tick the workload checks its view and asks each helper to check its own. On
//! SIGTERM it checks the same, then writes the first quarter (the helpers must not see
//! it), has helper A write shared page 5 (the workload and helper B must see it), and
//! ends the helpers.

use crate::args::{Args, Opt};
use crate::check::Problems;
use crate::family::{self, Helper};
use crate::memory::{describe_bad_pages, fill_page, page_diff, BadPage, PAGE};
use crate::protocol::Workload;
use crate::steady;
use crate::sys::{self, Mapping};
use nix::libc;

/// Program name.
pub const NAME: &str = "cowmem";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const COW_PAGES: usize = 64;
const QUARTER: usize = COW_PAGES / 4;
const SHARED_PAGES: usize = 16;
const COW: u64 = 2;
const SHARED: u64 = 3;

/// What one process must see: which quarter it rewrote, which shared pages are written
/// (page, generation), and which first-quarter pages it rewrote itself.
#[derive(Debug, Clone)]
struct View {
    who: String,
    quarter: usize,
    shared: Vec<(usize, u32)>,
    own_first: Vec<usize>,
}

fn page_of(addr: usize, i: usize) -> &'static [u8] {
    // SAFETY: the regions are mapped for the life of the process and `i` is in range
    // (callers iterate over the region's pages).
    unsafe { std::slice::from_raw_parts((addr + i * PAGE) as *const u8, PAGE) }
}

fn write_page(addr: usize, i: usize, region: u64, gen: u32) {
    // SAFETY: as above; only the process that owns this view writes these pages.
    let page = unsafe { std::slice::from_raw_parts_mut((addr + i * PAGE) as *mut u8, PAGE) };
    fill_page(page, region, i, gen);
}

impl View {
    fn cow_gen(&self, i: usize) -> u32 {
        if i / QUARTER == self.quarter || self.own_first.contains(&i) {
            1
        } else {
            0
        }
    }

    fn check(&self, cow: usize, shared: usize) -> Result<(), String> {
        let mut p = Problems::new();
        let mut want = vec![0u8; PAGE];
        let bad: Vec<BadPage> = (0..COW_PAGES)
            .filter_map(|i| {
                fill_page(&mut want, COW, i, self.cow_gen(i));
                page_diff(i, &want, page_of(cow, i))
            })
            .collect();
        if !bad.is_empty() {
            p.push(describe_bad_pages(
                &format!("{}: private copy-on-write region", self.who),
                cow,
                COW_PAGES,
                &bad,
            ));
        }
        let bad: Vec<BadPage> = (0..SHARED_PAGES)
            .filter_map(|i| {
                match self.shared.iter().find(|(page, _)| *page == i) {
                    Some(&(_, gen)) => fill_page(&mut want, SHARED, i, gen),
                    None => want.fill(0),
                }
                page_diff(i, &want, page_of(shared, i))
            })
            .collect();
        if !bad.is_empty() {
            p.push(describe_bad_pages(
                &format!("{}: shared anonymous region", self.who),
                shared,
                SHARED_PAGES,
                &bad,
            ));
        }
        p.into_result()
    }
}

fn helper_main(
    view: &mut View,
    cow: usize,
    shared: usize,
    index: usize,
    req: &str,
) -> Result<String, String> {
    match req.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["init"] => {
            for i in view.quarter * QUARTER..(view.quarter + 1) * QUARTER {
                write_page(cow, i, COW, 1);
            }
            write_page(shared, index, SHARED, 0);
            Ok("done".into())
        }
        ["check"] => view.check(cow, shared).map(|_| "ok".into()),
        ["write-shared", page] => {
            let page: usize = page.parse().map_err(|_| format!("bad page {page}"))?;
            write_page(shared, page, SHARED, 5);
            view.shared.push((page, 5));
            Ok("done".into())
        }
        ["note-shared", page] => {
            let page: usize = page.parse().map_err(|_| format!("bad page {page}"))?;
            view.shared.push((page, 5));
            Ok("done".into())
        }
        _ => Err(format!("unknown request `{req}`")),
    }
}

struct State {
    cow: Mapping,
    shared: Mapping,
    view: View,
    helpers: Vec<Helper>,
}

fn setup() -> Result<State, String> {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let cow = sys::mmap(COW_PAGES * PAGE, rw, libc::MAP_PRIVATE, None, 0)
        .map_err(|e| format!("mmap of the private region: {e}"))?;
    let shared = sys::mmap(SHARED_PAGES * PAGE, rw, libc::MAP_SHARED, None, 0)
        .map_err(|e| format!("mmap of the shared region: {e}"))?;
    let (c, s) = (cow.addr(), shared.addr());
    for i in 0..COW_PAGES {
        write_page(c, i, COW, 0);
    }
    let written: Vec<(usize, u32)> = (0..3).map(|i| (i, 0)).collect();
    let mut helpers = Vec::new();
    for (index, name) in [(1usize, "helper A"), (2, "helper B")] {
        let mut view = View {
            who: name.to_string(),
            quarter: index,
            shared: written.clone(),
            own_first: Vec::new(),
        };
        let mut h = family::spawn(name, move |req| helper_main(&mut view, c, s, index, req))?;
        h.ask("init")?;
        helpers.push(h);
    }
    for i in 3 * QUARTER..COW_PAGES {
        write_page(c, i, COW, 1);
    }
    write_page(s, 0, SHARED, 0);
    Ok(State {
        cow,
        shared,
        view: View {
            who: "workload".into(),
            quarter: 3,
            shared: written,
            own_first: Vec::new(),
        },
        helpers,
    })
}

impl State {
    fn check(&mut self) -> Result<(), String> {
        let mut p = Problems::new();
        p.check(self.view.check(self.cow.addr(), self.shared.addr()));
        for h in &mut self.helpers {
            p.take(h.ask("check"));
        }
        p.into_result()
    }

    fn exercise(&mut self) -> Result<(), String> {
        write_page(self.cow.addr(), 0, COW, 1);
        self.view.own_first.push(0);
        self.helpers[0].ask("write-shared 5")?;
        self.helpers[1].ask("note-shared 5")?;
        self.view.shared.push((5, 5));
        self.check()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let mut st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    if let Err(e) = st.check() {
        for h in st.helpers.drain(..) {
            h.kill();
        }
        wl.setup_failed(&e);
    }
    let detail = format!(
        "cow={:#x} ({COW_PAGES} pages) shared={:#x} ({SHARED_PAGES} pages) helper-a={} helper-b={}",
        st.cow.addr(),
        st.shared.addr(),
        st.helpers[0].pid,
        st.helpers[1].pid
    );
    let outcome = steady::ready_then_tick(wl, args, &detail, |_| st.check()).and_then(|ticks| {
        st.check()?;
        st.exercise()?;
        Ok(ticks)
    });
    let ticks = match outcome {
        Ok(t) => t,
        Err(e) => {
            for h in st.helpers.drain(..) {
                h.kill();
            }
            return Err(e);
        }
    };
    let mut p = Problems::new();
    for h in st.helpers.drain(..) {
        p.check(h.finish());
    }
    p.finish(|| {
        format!(
            "3 processes kept their copy-on-write views and the shared region over {ticks} checks; later writes stayed private or shared as they must"
        )
    })
}
