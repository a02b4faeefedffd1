//! Workloads about memory: a large anonymous region whose every page is checked, regions
//! with protections and `madvise`/`mlock` flags, and copy-on-write memory shared after
//! `fork`, the vDSO, a userfaultfd range and transparent huge page advice. Scenario tag
//! `memory`.
//!
//! This module holds what they share: page patterns and the check of a whole region.

pub mod bigmem;
pub mod cowmem;
pub mod mprotect;
pub mod thp;
pub mod uffd;
pub mod vdso;

use crate::check::fill_pattern;

/// The page size the workloads assume (x86-64).
pub const PAGE: usize = 4096;

/// The seed of page `index` at generation `gen` of a region named by `region`.
pub fn page_seed(region: u64, index: usize, gen: u32) -> u64 {
    (region << 48) ^ ((index as u64) << 16) ^ gen as u64 ^ 0x5EED
}

/// Fills one page with its pattern.
pub fn fill_page(page: &mut [u8], region: u64, index: usize, gen: u32) {
    fill_pattern(page, page_seed(region, index, gen));
}

/// A page that is not what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPage {
    pub index: usize,
    /// First differing byte within the page.
    pub offset: usize,
    pub expected: u8,
    pub got: u8,
}

/// Compares `got` (one page) with `want`; the first difference if any.
pub fn page_diff(index: usize, want: &[u8], got: &[u8]) -> Option<BadPage> {
    let offset = want.iter().zip(got).position(|(a, b)| a != b)?;
    Some(BadPage {
        index,
        offset,
        expected: want[offset],
        got: got[offset],
    })
}

/// Describes the bad pages of a region at `base`: how many, and the first few exactly.
pub fn describe_bad_pages(region: &str, base: usize, total: usize, bad: &[BadPage]) -> String {
    let first: Vec<String> = bad
        .iter()
        .take(3)
        .map(|b| {
            format!(
                "page {} (address {:#x}) differs at byte {}: expected {:#04x}, got {:#04x}",
                b.index,
                base + b.index * PAGE + b.offset,
                b.offset,
                b.expected,
                b.got
            )
        })
        .collect();
    format!(
        "{region}: {} of {total} pages differ; {}",
        bad.len(),
        first.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_differ_by_index_and_generation() {
        let mut a = vec![0u8; PAGE];
        let mut b = vec![0u8; PAGE];
        fill_page(&mut a, 1, 5, 0);
        fill_page(&mut b, 1, 5, 1);
        assert_ne!(a, b);
        fill_page(&mut b, 1, 6, 0);
        assert_ne!(a, b);
        fill_page(&mut b, 1, 5, 0);
        assert_eq!(page_diff(5, &a, &b), None);
        b[17] ^= 1;
        let bad = page_diff(5, &a, &b).unwrap();
        assert_eq!((bad.index, bad.offset), (5, 17));
        let text = describe_bad_pages("region", 0x1000, 10, &[bad]);
        assert!(
            text.starts_with(
                "region: 1 of 10 pages differ; page 5 (address 0x6011) differs at byte 17"
            ),
            "{text}"
        );
    }
}
