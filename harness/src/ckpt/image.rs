//! One CRIU image file: its magic, its entry framing, its entries decoded.
//!
//! ```text
//! image   := magic entry*
//! magic   := u32 TYPE                      (inventory.img only)
//!          | u32 COMMON|SERVICE, u32 TYPE  (every other image, format v1.1)
//! entry   := u32 size (little-endian), protobuf message of `size` bytes [extra payload]
//! ```
//!
//! A few image types carry raw data after some entries (pipe and socket queues, ghost
//! files, IPC segments, BPF maps); pages-*.img and the network/tmpfs dumps are raw data
//! with neither magic nor framing. The magics are those of CRIU's `criu/include/magic.h`.

use crate::ckpt::entries::Decode;
use crate::ckpt::proto::{Cursor, Fields, ProtoError};

/// Heads every image but the inventory (images v1.1).
pub const IMG_COMMON_MAGIC: u32 = 0x5456_4319;
/// Heads the service files: stats and irmap-cache.
pub const IMG_SERVICE_MAGIC: u32 = 0x5510_5940;

pub const INVENTORY_MAGIC: u32 = 0x5831_3116;
pub const PSTREE_MAGIC: u32 = 0x5027_3030;
pub const CORE_MAGIC: u32 = 0x5505_3847;
pub const STATS_MAGIC: u32 = 0x5709_3306;

/// Image types by magic, named as `crit` names them.
const MAGICS: &[(&str, u32)] = &[
    ("INVENTORY", INVENTORY_MAGIC),
    ("PSTREE", PSTREE_MAGIC),
    ("FDINFO", 0x5621_3732),
    ("PAGEMAP", 0x5608_4025),
    ("CORE", CORE_MAGIC),
    ("IDS", 0x5443_2030),
    ("VMAS", 0x5412_3737),
    ("PIPES", 0x5651_3555),
    ("PIPES_DATA", 0x5645_3709),
    ("FIFO", 0x5836_4939),
    ("FIFO_DATA", 0x5933_3054),
    ("SIGACT", 0x5534_4201),
    ("UNIXSK", 0x5437_3943),
    ("INETSK", 0x5644_3851),
    ("PACKETSK", 0x6045_4618),
    ("ITIMERS", 0x5746_4056),
    ("POSIX_TIMERS", 0x5260_3957),
    ("SK_QUEUES", 0x5626_4026),
    ("UTSNS", 0x5447_3203),
    ("CREDS", 0x5402_3547),
    ("IPC_VAR", 0x5311_5007),
    ("IPCNS_SHM", 0x4628_3044),
    ("IPCNS_MSG", 0x5545_3737),
    ("IPCNS_SEM", 0x5957_3019),
    ("REG_FILES", 0x5036_3636),
    ("EXT_FILES", 0x5925_5641),
    ("FS", 0x5140_3912),
    ("MM", 0x5749_2820),
    ("REMAP_FPATH", 0x5913_3954),
    ("GHOST_FILE", 0x5258_3605),
    ("TCP_STREAM", 0x5146_5506),
    ("EVENTFD_FILE", 0x4452_3722),
    ("EVENTPOLL_FILE", 0x4502_3858),
    ("EVENTPOLL_TFD", 0x4443_3746),
    ("SIGNALFD", 0x5732_3820),
    ("INOTIFY_FILE", 0x4842_4431),
    ("INOTIFY_WD", 0x5456_2009),
    ("MNTS", 0x5556_3928),
    ("NETDEV", 0x5737_3951),
    ("NETNS", 0x5593_3752),
    ("TTY_FILES", 0x5943_3025),
    ("TTY_INFO", 0x5945_3036),
    ("TTY_DATA", 0x5941_3026),
    ("FILE_LOCKS", 0x5432_3616),
    ("RLIMIT", 0x5711_3925),
    ("FANOTIFY_FILE", 0x5509_6122),
    ("FANOTIFY_MARK", 0x5650_6035),
    ("SIGNAL", 0x5925_5647),
    ("NETLINK_SK", 0x5800_5614),
    ("NS_FILES", 0x6139_4011),
    ("TUNFILE", 0x5714_3751),
    ("CGROUP", 0x5938_3330),
    ("TIMERFD", 0x5049_3712),
    ("CPUINFO", 0x6140_4013),
    ("USERNS", 0x5547_4906),
    ("SECCOMP", 0x6441_3049),
    ("BINFMT_MISC", 0x6734_3323),
    ("AUTOFS", 0x4935_3943),
    ("FILES", 0x5630_3138),
    ("MEMFD_INODE", 0x4845_3499),
    ("TIMENS", 0x4311_4433),
    ("PIDNS", 0x6115_7326),
    ("BPFMAP_FILE", 0x5750_6142),
    ("BPFMAP_DATA", 0x6432_4033),
    ("APPARMOR", 0x5942_3047),
    ("STATS", STATS_MAGIC),
    ("IRMAP_CACHE", 0x5700_4059),
];

/// Image types whose entries may be followed by raw data, so that walking the entries
/// needs each message decoded: ckptinfo does not count their entries.
const WITH_EXTRA: &[&str] = &[
    "PIPES_DATA",
    "FIFO_DATA",
    "SK_QUEUES",
    "TCP_STREAM",
    "GHOST_FILE",
    "IPCNS_SHM",
    "IPCNS_SEM",
    "IPCNS_MSG",
    "BPFMAP_DATA",
];

/// Raw images (no magic, no framing), by file name prefix, with what they hold.
const RAW: &[(&str, &str)] = &[
    ("pages-", "PAGES"),
    ("ifaddr-", "IFADDR"),
    ("route6-", "ROUTE6"),
    ("route-", "ROUTE"),
    ("rule-", "RULE"),
    ("iptables-", "IPTABLES"),
    ("ip6tables-", "IP6TABLES"),
    ("nftables-", "NFTABLES"),
    ("netns-ct-", "NETNF_CT"),
    ("netns-exp-", "NETNF_EXP"),
    ("tmpfs-dev-", "TMPFS_DEV"),
    ("tmpfs-", "TMPFS_IMG"),
];

/// The image type of a magic, by name.
pub fn magic_name(magic: u32) -> Option<&'static str> {
    MAGICS.iter().find(|(_, m)| *m == magic).map(|(n, _)| *n)
}

/// The raw image type a file name stands for (`pages-1.img` -> `PAGES`).
pub fn raw_kind(file_name: &str) -> Option<&'static str> {
    if !file_name.ends_with(".img") {
        return None;
    }
    RAW.iter()
        .find(|(prefix, _)| file_name.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// Why bytes are not a well-formed image of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a CRIU image: {len} bytes, too short for a magic")]
    TooShort { len: usize },
    #[error("not a CRIU image: unknown magic {magic:#010x} at byte offset {offset}")]
    UnknownMagic { magic: u32, offset: u64 },
    #[error("a {found} image, not {expected}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("{count} entries where one was expected")]
    EntryCount { count: usize },
    #[error(transparent)]
    Proto(#[from] ProtoError),
}

/// How an image file begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The image type's own magic.
    pub magic: u32,
    pub name: &'static str,
    /// Headed by `IMG_SERVICE_MAGIC` (stats, irmap-cache) rather than the common one.
    pub service: bool,
    /// Bytes taken by the magic(s): 4 for the inventory, 8 for the others.
    pub len: usize,
}

/// Reads the magic(s) at the start of an image.
pub fn header(data: &[u8]) -> Result<Header, FormatError> {
    let mut c = Cursor::new(data, 0);
    let first = c
        .u32_le("magic")
        .map_err(|_| FormatError::TooShort { len: data.len() })?;
    let (magic, service, at) = match first {
        IMG_COMMON_MAGIC | IMG_SERVICE_MAGIC => (c.u32_le("magic")?, first == IMG_SERVICE_MAGIC, 4),
        m => (m, false, 0),
    };
    // A type magic with no common magic before it is the inventory, or any image of the
    // old v1 format: both read the same way.
    let name = magic_name(magic).ok_or(FormatError::UnknownMagic { magic, offset: at })?;
    Ok(Header {
        magic,
        name,
        service,
        len: c.offset() as usize,
    })
}

/// One framed entry: the file offset of its size field and its message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub offset: u64,
    pub payload: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The entry's message fields, offsets counted from the start of the file.
    pub fn fields(&self) -> Fields<'a> {
        Fields::new(self.payload, self.offset + 4)
    }
}

/// The framed entries of `data` from byte `start` on (just after the magic).
pub fn entries(data: &[u8], start: usize) -> Entries<'_> {
    let start = start.min(data.len());
    Entries {
        cursor: Cursor::new(&data[start..], start as u64),
        failed: false,
    }
}

/// Iterator over framed entries; stops after the first error.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> Entries<'a> {
    fn next_entry(&mut self) -> Result<Entry<'a>, ProtoError> {
        let offset = self.cursor.offset();
        let size = self.cursor.u32_le("entry size")?;
        // A size past the end is reported at the size field; the slice bounds it, so a
        // corrupt size never turns into an allocation.
        let payload = self
            .cursor
            .take(u64::from(size), "entry")
            .map_err(|e| ProtoError::new(offset, e.problem))?;
        Ok(Entry { offset, payload })
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let r = self.next_entry();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Whether entries of this image type can be walked without decoding them.
pub fn plain_entries(name: &str) -> bool {
    !WITH_EXTRA.contains(&name)
}

/// Checks that `data` is an image of type `expected` and decodes all its entries as `T`.
pub fn decode_all<T: Decode>(data: &[u8], expected: u32) -> Result<Vec<T>, FormatError> {
    let h = header(data)?;
    if h.magic != expected {
        return Err(FormatError::WrongType {
            expected: magic_name(expected).unwrap_or("?"),
            found: h.name,
        });
    }
    entries(data, h.len)
        .map(|e| Ok(T::decode(e?.fields())?))
        .collect()
}

/// Like [`decode_all`], for images of exactly one entry (inventory, core, stats).
pub fn decode_one<T: Decode>(data: &[u8], expected: u32) -> Result<T, FormatError> {
    let mut all = decode_all::<T>(data, expected)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        count => Err(FormatError::EntryCount { count }),
    }
}

/// Counts the entries of a plain image (after its header).
pub fn count_entries(data: &[u8], start: usize) -> Result<usize, ProtoError> {
    entries(data, start).try_fold(0, |n, e| e.map(|_| n + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckpt::entries::{Inventory, PstreeEntry};
    use crate::ckpt::proto::Problem;

    fn le(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    /// An image of the given magic with the given entry payloads.
    fn image(magic: u32, payloads: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        if magic != INVENTORY_MAGIC {
            v.extend(le(if magic == STATS_MAGIC {
                IMG_SERVICE_MAGIC
            } else {
                IMG_COMMON_MAGIC
            }));
        }
        v.extend(le(magic));
        for p in payloads {
            v.extend(le(p.len() as u32));
            v.extend(*p);
        }
        v
    }

    #[test]
    fn headers() {
        let inv = image(INVENTORY_MAGIC, &[]);
        assert_eq!(header(&inv).unwrap().len, 4);
        assert_eq!(header(&inv).unwrap().name, "INVENTORY");
        let core = image(CORE_MAGIC, &[]);
        let h = header(&core).unwrap();
        assert_eq!((h.name, h.len, h.service), ("CORE", 8, false));
        let stats = image(STATS_MAGIC, &[]);
        assert!(header(&stats).unwrap().service);
    }

    #[test]
    fn foreign_files() {
        assert_eq!(
            header(b"#!/bin/sh\n"),
            Err(FormatError::UnknownMagic {
                magic: u32::from_le_bytes(*b"#!/b"),
                offset: 0
            })
        );
        assert_eq!(header(b"ab"), Err(FormatError::TooShort { len: 2 }));
        // A common magic followed by nothing, or by an unknown type.
        assert!(matches!(
            header(&le(IMG_COMMON_MAGIC)),
            Err(FormatError::Proto(_))
        ));
        let mut v = le(IMG_COMMON_MAGIC).to_vec();
        v.extend(le(0x1234_5678));
        assert_eq!(
            header(&v),
            Err(FormatError::UnknownMagic {
                magic: 0x1234_5678,
                offset: 4
            })
        );
    }

    #[test]
    fn framing() {
        let img = image(
            PSTREE_MAGIC,
            &[&[0x08, 0x01], &[], &[0x08, 0x02, 0x10, 0x01]],
        );
        let e: Vec<_> = entries(&img, 8).collect::<Result<_, _>>().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].offset, 8);
        assert_eq!(e[1].offset, 14);
        assert_eq!(e[2].payload, [0x08, 0x02, 0x10, 0x01]);
        assert_eq!(count_entries(&img, 8), Ok(3));
        assert_eq!(count_entries(&img[..8], 8), Ok(0));
    }

    #[test]
    fn truncated_framing() {
        let img = image(PSTREE_MAGIC, &[&[0x08, 0x01, 0x10, 0x00]]);
        // Cut inside the size field, then inside the payload.
        let e = count_entries(&img[..10], 8).unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(matches!(
            e.problem,
            Problem::Truncated {
                what: "entry size",
                ..
            }
        ));
        let e = count_entries(&img[..14], 8).unwrap_err();
        assert_eq!(e.offset, 8);
        assert_eq!(
            e.problem,
            Problem::Truncated {
                what: "entry",
                needed: 4,
                left: 2
            }
        );
    }

    #[test]
    fn huge_size_is_an_error_not_an_allocation() {
        let mut img = image(PSTREE_MAGIC, &[]);
        img.extend(le(u32::MAX));
        img.extend([0u8; 3]);
        let e = decode_all::<PstreeEntry>(&img, PSTREE_MAGIC).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at byte offset 8: truncated: entry needs 4294967295 bytes, 3 left"
        );
    }

    #[test]
    fn typed_decoding() {
        let img = image(INVENTORY_MAGIC, &[&[0x08, 0x02, 0x10, 0x01]]);
        let inv: Inventory = decode_one(&img, INVENTORY_MAGIC).unwrap();
        assert_eq!(inv.img_version, 2);
        assert_eq!(inv.fdinfo_per_id, Some(true));
        assert_eq!(
            decode_one::<Inventory>(&img, PSTREE_MAGIC),
            Err(FormatError::WrongType {
                expected: "PSTREE",
                found: "INVENTORY"
            })
        );
        let two = image(INVENTORY_MAGIC, &[&[0x08, 0x02], &[0x08, 0x02]]);
        assert_eq!(
            decode_one::<Inventory>(&two, INVENTORY_MAGIC),
            Err(FormatError::EntryCount { count: 2 })
        );
        // A message error inside the second entry is placed in the file.
        let bad = image(
            PSTREE_MAGIC,
            &[
                &[0x08, 0x01, 0x10, 0x00, 0x18, 0x01, 0x20, 0x01],
                &[0x08, 0x80],
            ],
        );
        let e = decode_all::<PstreeEntry>(&bad, PSTREE_MAGIC).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at byte offset 25: truncated: varint needs 2 bytes, 1 left"
        );
    }

    #[test]
    fn names() {
        assert_eq!(magic_name(0x4311_4433), Some("TIMENS"));
        assert_eq!(magic_name(0), None);
        assert_eq!(raw_kind("pages-12.img"), Some("PAGES"));
        assert_eq!(raw_kind("route6-9.img"), Some("ROUTE6"));
        assert_eq!(raw_kind("tmpfs-dev-50.tar.gz.img"), Some("TMPFS_DEV"));
        assert_eq!(raw_kind("pagemap-1.img"), None);
        assert!(plain_entries("CORE"));
        assert!(!plain_entries("PIPES_DATA"));
    }
}
