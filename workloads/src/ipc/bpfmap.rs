//! `bpfmap`: BPF maps held by descriptor (needs root and `CONFIG_BPF_SYSCALL`).
//!
//! An array map (`BPF_MAP_TYPE_ARRAY`, 64 entries of 16 bytes) and a hash map
//! (`BPF_MAP_TYPE_HASH`, 32 entries of 8-byte keys and 16-byte values), each named, each
//! filled with a pattern. Every tick it looks up two entries of each and checks what
//! `BPF_OBJ_GET_INFO_BY_FD` says of the map (type, key and value size, entries, flags,
//! name). On SIGTERM it checks every entry of both and the info, then updates an entry and
//! deletes a key and reads both back.

use crate::args::{Args, Opt};
use crate::check::{pattern, Problems};
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Program name.
pub const NAME: &str = "bpfmap";
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const HASH: u32 = 1;
const ARRAY: u32 = 2;
const VALUE: usize = 16;
/// The number of keys put in the hash map.
const HASH_KEYS: u64 = 20;

/// `union bpf_attr`, as 16 words (the kernel takes any size up to what it knows).
type Attr = [u64; 16];

fn bpf(cmd: libc::c_int, attr: &mut Attr) -> std::io::Result<libc::c_long> {
    // SAFETY: the kernel reads and writes at most size_of::<Attr>() bytes of `attr`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Sets `key` to `value` in the map behind `fd` (`BPF_MAP_UPDATE_ELEM`); a test uses it
/// to change a map from outside.
pub fn update_elem(fd: RawFd, key: &[u8], value: &[u8]) -> std::io::Result<()> {
    let mut v = value.to_vec();
    let mut a: Attr = [0; 16];
    a[0] = fd as u64;
    a[1] = key.as_ptr() as u64;
    a[2] = v.as_mut_ptr() as u64;
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// What a map is, as created and as `BPF_OBJ_GET_INFO_BY_FD` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `map_type`.
    pub kind: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub entries: u32,
    /// `map_flags`.
    pub flags: u32,
    /// `name`.
    pub name: String,
}

/// Reads `struct bpf_map_info` as the kernel fills it: type, id, key size, value size,
/// max entries, flags, name[16].
pub fn parse_info(raw: &[u8]) -> Option<Info> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            raw.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let name = raw.get(24..40)?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(Info {
        kind: word(0)?,
        key_size: word(2)?,
        value_size: word(3)?,
        entries: word(4)?,
        flags: word(5)?,
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
    })
}

struct Map {
    fd: OwnedFd,
    want: Info,
}

impl Map {
    fn create(want: Info) -> Result<Map, String> {
        // map_type, key_size, value_size, max_entries, map_flags; map_name starts at byte
        // 28 (after inner_map_fd and numa_node).
        let mut bytes = [0u8; 128];
        let fields = [
            want.kind,
            want.key_size,
            want.value_size,
            want.entries,
            want.flags,
        ];
        for (i, v) in fields.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        bytes[28..28 + want.name.len()].copy_from_slice(want.name.as_bytes());
        let mut a: Attr = std::array::from_fn(|i| {
            u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap())
        });
        let fd = bpf(BPF_MAP_CREATE, &mut a)
            .map_err(|e| format!("BPF_MAP_CREATE {}: {}", want.name, errno_text(&e)))?;
        let fd = sys::owned(fd as libc::c_int).map_err(|e| e.to_string())?;
        Ok(Map { fd, want })
    }

    fn who(&self) -> String {
        format!("bpf map {} (fd {})", self.want.name, self.fd.as_raw_fd())
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn info(&self) -> Result<Info, String> {
        let mut out = [0u8; 128];
        let mut a: Attr = [0; 16];
        a[0] = self.raw() as u64 | (out.len() as u64) << 32;
        a[1] = out.as_mut_ptr() as u64;
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)
            .map_err(|e| format!("{}: BPF_OBJ_GET_INFO_BY_FD: {}", self.who(), errno_text(&e)))?;
        parse_info(&out).ok_or_else(|| format!("{}: short map info", self.who()))
    }

    fn elem(&self, cmd: libc::c_int, key: &[u8], value: Option<&mut [u8]>) -> std::io::Result<()> {
        let mut a: Attr = [0; 16];
        a[0] = self.raw() as u64;
        a[1] = key.as_ptr() as u64;
        a[2] = value.map_or(0, |v| v.as_mut_ptr() as u64);
        bpf(cmd, &mut a).map(|_| ())
    }

    fn lookup(&self, key: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut v = vec![0u8; self.want.value_size as usize];
        self.elem(BPF_MAP_LOOKUP_ELEM, key, Some(&mut v))?;
        Ok(v)
    }

    fn update(&self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        update_elem(self.raw(), key, value)
    }

    fn delete(&self, key: &[u8]) -> std::io::Result<()> {
        self.elem(BPF_MAP_DELETE_ELEM, key, None)
    }
}

/// The key bytes of entry `i` of a map with `key_size`-byte keys.
fn key(i: u64, key_size: u32) -> Vec<u8> {
    if key_size == 4 {
        (i as u32).to_ne_bytes().to_vec()
    } else {
        (i * 7919 + 3).to_ne_bytes().to_vec()
    }
}

fn value(map: &str, i: u64) -> Vec<u8> {
    pattern(i + if map == "crt_hash" { 1000 } else { 0 }, VALUE)
}

struct Maps {
    array: Map,
    hash: Map,
}

impl Maps {
    fn setup() -> Result<Maps, String> {
        let array = Map::create(Info {
            kind: ARRAY,
            key_size: 4,
            value_size: VALUE as u32,
            entries: 64,
            flags: 0,
            name: "crt_array".into(),
        })?;
        let hash = Map::create(Info {
            kind: HASH,
            key_size: 8,
            value_size: VALUE as u32,
            entries: 32,
            // BPF_F_NO_PREALLOC
            flags: 1,
            name: "crt_hash".into(),
        })?;
        for i in 0..64 {
            array
                .update(&key(i, 4), &value("crt_array", i))
                .map_err(|e| format!("{}: update {i}: {}", array.who(), errno_text(&e)))?;
        }
        for i in 0..HASH_KEYS {
            hash.update(&key(i, 8), &value("crt_hash", i))
                .map_err(|e| format!("{}: update {i}: {}", hash.who(), errno_text(&e)))?;
        }
        Ok(Maps { array, hash })
    }

    fn check(&self, keys: impl Fn(&Map) -> Vec<u64>) -> Result<(), String> {
        let mut p = Problems::new();
        for m in [&self.array, &self.hash] {
            match m.info() {
                Ok(got) => p.expect_eq(&format!("{}: map info", m.who()), &m.want, &got),
                Err(e) => p.push(e),
            }
            for i in keys(m) {
                let what = format!("{}: entry {i}", m.who());
                match m.lookup(&key(i, m.want.key_size)) {
                    Ok(v) => p.check(crate::check::compare_bytes(
                        &what,
                        &value(&m.want.name, i),
                        &v,
                    )),
                    Err(e) => p.push(format!("{what}: lookup: {}", errno_text(&e))),
                }
            }
        }
        p.into_result()
    }

    fn exercise(&self) -> Result<(), String> {
        let mut p = Problems::new();
        let fresh = pattern(4242, VALUE);
        let k = key(5, 4);
        if let Err(e) = self.array.update(&k, &fresh) {
            p.push(format!(
                "{}: update after restore: {}",
                self.array.who(),
                errno_text(&e)
            ));
        } else {
            match self.array.lookup(&k) {
                Ok(v) => p.check(crate::check::compare_bytes(
                    &format!("{}: entry 5 updated", self.array.who()),
                    &fresh,
                    &v,
                )),
                Err(e) => p.push(format!("{}: lookup: {}", self.array.who(), errno_text(&e))),
            }
        }
        let k = key(3, 8);
        match self.hash.delete(&k) {
            Err(e) => p.push(format!(
                "{}: delete key 3: {}",
                self.hash.who(),
                errno_text(&e)
            )),
            Ok(()) => match self.hash.lookup(&k) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => p.push(format!(
                    "{}: lookup deleted key: {}",
                    self.hash.who(),
                    errno_text(&e)
                )),
                Ok(_) => p.push(format!(
                    "{}: key 3 still found after its delete",
                    self.hash.who()
                )),
            },
        }
        p.into_result()
    }
}

/// Creates the maps, then ticks.
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let maps = Maps::setup().unwrap_or_else(|e| wl.setup_failed(&e));
    maps.check(|m| (0..u64::from(m.want.entries.min(HASH_KEYS as u32))).collect())
        .unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!("array={} hash={}", maps.array.raw(), maps.hash.raw());
    let ticks = steady::ready_then_tick(wl, args, &detail, |n| {
        maps.check(|m| {
            let span = if m.want.kind == ARRAY { 64 } else { HASH_KEYS };
            vec![n % span, (n * 13) % span]
        })
    })?;
    maps.check(|m| {
        let span = if m.want.kind == ARRAY { 64 } else { HASH_KEYS };
        (0..span).collect()
    })?;
    maps.exercise()?;
    Ok(format!(
        "an array map of 64 and a hash map of {HASH_KEYS} entries kept every value and their info over {ticks} checks; an update and a delete worked"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_info_is_read_from_the_kernel_layout() {
        let mut raw = vec![0u8; 80];
        for (i, v) in [2u32, 9, 4, 16, 64, 1].iter().enumerate() {
            raw[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        raw[24..33].copy_from_slice(b"crt_array");
        assert_eq!(
            parse_info(&raw),
            Some(Info {
                kind: 2,
                key_size: 4,
                value_size: 16,
                entries: 64,
                flags: 1,
                name: "crt_array".into()
            })
        );
        assert_eq!(parse_info(&raw[..30]), None);
    }
}
