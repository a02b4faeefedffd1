//! What the workloads use to compare their state with what it must be, and to say exactly
//! what differs: a [`Problems`] list, deterministic byte [`pattern`]s and [`compare_bytes`].

use std::fmt::Debug;

/// The differences found by a check, each a sentence naming the object, what was expected
/// and what was found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<String>);

impl Problems {
    /// No problem yet.
    pub fn new() -> Problems {
        Problems::default()
    }

    /// Records one problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// Records `what: expected E, got G` when the two differ.
    pub fn expect_eq<T: PartialEq + Debug>(&mut self, what: &str, expected: T, got: T) {
        if expected != got {
            self.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }

    /// Records the error of `result`, if any.
    pub fn check(&mut self, result: Result<(), String>) {
        if let Err(e) = result {
            self.push(e);
        }
    }

    /// Records the error of `result` (if any) and gives its value.
    pub fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems found so far.
    pub fn list(&self) -> &[String] {
        &self.0
    }

    /// `Ok(summary)` when nothing was found, otherwise every problem joined with `; `.
    pub fn finish(self, summary: impl FnOnce() -> String) -> Result<String, String> {
        if self.0.is_empty() {
            Ok(summary())
        } else {
            Err(self.0.join("; "))
        }
    }

    /// `Ok(())` or every problem joined with `; `.
    pub fn into_result(self) -> Result<(), String> {
        self.finish(String::new).map(|_| ())
    }
}

/// Fills `buf` with the pattern of `seed`: a xorshift stream, different for every seed,
/// so that data moved, lost or taken from elsewhere is told apart from the right data.
pub fn fill_pattern(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// `len` bytes of the pattern of `seed` (see [`fill_pattern`]).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(&mut v, seed);
    v
}

/// Compares `got` with `expected`: the length first, then the first differing byte, with
/// how many bytes differ in all.
pub fn compare_bytes(what: &str, expected: &[u8], got: &[u8]) -> Result<(), String> {
    let common = expected.len().min(got.len());
    let first = (0..common).find(|&i| expected[i] != got[i]);
    let differing = (0..common).filter(|&i| expected[i] != got[i]).count();
    match (expected.len() == got.len(), first) {
        (true, None) => Ok(()),
        (true, Some(at)) => Err(format!(
            "{what} differs at offset {at}: expected {:#04x}, got {:#04x} ({differing} of {} bytes differ)",
            expected[at],
            got[at],
            expected.len()
        )),
        (false, first) => Err(format!(
            "{what} holds {} bytes, expected {}{}",
            got.len(),
            expected.len(),
            match first {
                Some(at) => format!(
                    "; the first {common} bytes differ first at offset {at} (expected {:#04x}, got {:#04x})",
                    expected[at], got[at]
                ),
                None => format!("; the first {common} bytes match"),
            }
        )),
    }
}

/// A short printable rendering of bytes for details: text as text, the rest escaped, cut
/// after 64 bytes.
pub fn show_bytes(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(64)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 64 {
        format!("\"{shown}\"... ({} bytes)", bytes.len())
    } else {
        format!("\"{shown}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_collect_and_join() {
        let mut p = Problems::new();
        p.expect_eq("offset of fd 3", 10u64, 10);
        assert!(p.is_empty());
        p.expect_eq("offset of fd 3", 10u64, 0);
        p.check(Err("pipe lost data".into()));
        assert_eq!(p.take::<u8>(Ok(7)), Some(7));
        assert_eq!(
            p.clone().finish(|| "fine".into()),
            Err("offset of fd 3: expected 10, got 0; pipe lost data".into())
        );
        assert_eq!(Problems::new().finish(|| "fine".into()), Ok("fine".into()));
    }

    #[test]
    fn patterns_differ_by_seed_and_repeat() {
        assert_eq!(pattern(1, 100), pattern(1, 100));
        assert_ne!(pattern(1, 100), pattern(2, 100));
        assert_eq!(&pattern(3, 100)[..37], &pattern(3, 37)[..]);
    }

    #[test]
    fn compare_names_the_first_difference() {
        let a = pattern(5, 16);
        assert_eq!(compare_bytes("x", &a, &a), Ok(()));
        let mut b = a.clone();
        b[9] ^= 0xff;
        assert_eq!(
            compare_bytes("pipe data", &a, &b).unwrap_err(),
            format!(
                "pipe data differs at offset 9: expected {:#04x}, got {:#04x} (1 of 16 bytes differ)",
                a[9], b[9]
            )
        );
        assert_eq!(
            compare_bytes("queue", &a, &a[..10]).unwrap_err(),
            "queue holds 10 bytes, expected 16; the first 10 bytes match"
        );
    }

    #[test]
    fn bytes_are_shown_escaped_and_cut() {
        assert_eq!(show_bytes(b"ab\n\x01"), "\"ab\\n\\x01\"");
        assert!(show_bytes(&[b'a'; 100]).ends_with("... (100 bytes)"));
    }
}
