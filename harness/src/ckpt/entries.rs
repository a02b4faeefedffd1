//! The CRIU image messages ckptinfo reads, decoded from the wire by hand after their
//! schemas (`images/*.proto` in CRIU; field numbers checked against criu 3.17's pycriu).
//!
//! Only the fields ckptinfo shows are kept. Unknown fields are skipped, as protobuf
//! requires, so images written by newer criu versions still read; a missing required field
//! is an error, as it is for criu itself.

use crate::ckpt::proto::{required, Fields, ProtoError};
use serde::Serialize;

/// Decodes one message of type `Self` from its fields.
pub trait Decode: Sized {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError>;
}

/// `task_kobj_ids_entry`: the ids of the objects a task shares (memory, files, namespaces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KobjIds {
    pub vm_id: u32,
    pub files_id: u32,
    pub fs_id: u32,
    pub sighand_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mnt_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_ns_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_ns_id: Option<u32>,
}

impl Decode for KobjIds {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut ids = KobjIds::default();
        let (mut vm, mut files, mut fs, mut sighand) = (None, None, None, None);
        for f in msg {
            let f = f?;
            let v = || f.u32("task_kobj_ids_entry");
            match f.number {
                1 => vm = Some(v()?),
                2 => files = Some(v()?),
                3 => fs = Some(v()?),
                4 => sighand = Some(v()?),
                5 => ids.pid_ns_id = Some(v()?),
                6 => ids.net_ns_id = Some(v()?),
                7 => ids.ipc_ns_id = Some(v()?),
                8 => ids.uts_ns_id = Some(v()?),
                9 => ids.mnt_ns_id = Some(v()?),
                10 => ids.user_ns_id = Some(v()?),
                11 => ids.cgroup_ns_id = Some(v()?),
                12 => ids.time_ns_id = Some(v()?),
                _ => {}
            }
        }
        ids.vm_id = required(vm, start, "task_kobj_ids_entry.vm_id")?;
        ids.files_id = required(files, start, "task_kobj_ids_entry.files_id")?;
        ids.fs_id = required(fs, start, "task_kobj_ids_entry.fs_id")?;
        ids.sighand_id = required(sighand, start, "task_kobj_ids_entry.sighand_id")?;
        Ok(ids)
    }
}

/// The `lsmtype` enum of the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lsm {
    NoLsm,
    Selinux,
    Apparmor,
    Other(u32),
}

impl Lsm {
    fn from_wire(v: u32) -> Self {
        match v {
            0 => Lsm::NoLsm,
            1 => Lsm::Selinux,
            2 => Lsm::Apparmor,
            n => Lsm::Other(n),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Lsm::NoLsm => "none".into(),
            Lsm::Selinux => "selinux".into(),
            Lsm::Apparmor => "apparmor".into(),
            Lsm::Other(n) => format!("lsm {n}"),
        }
    }
}

/// `inventory_entry`: the one entry of `inventory.img`, written last by a dump.
///
/// criu records no version of its own here; the image format version is `img_version`
/// (1: images v1, 2: v1.1, every image but the inventory opening with a common magic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub img_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdinfo_per_id: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_ids: Option<KobjIds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_per_id: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_cg_set: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsmtype: Option<Lsm>,
    /// Boot-relative time of the dump, in microseconds (recorded with pre-dumps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_uptime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_dump_mode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_close: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_lock_method: Option<u32>,
}

impl Decode for Inventory {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut inv = Inventory::default();
        let mut img_version = None;
        for f in msg {
            let f = f?;
            match f.number {
                1 => img_version = Some(f.u32("inventory_entry.img_version")?),
                2 => inv.fdinfo_per_id = Some(f.bool("inventory_entry.fdinfo_per_id")?),
                3 => inv.root_ids = Some(KobjIds::decode(f.message("inventory_entry.root_ids")?)?),
                4 => inv.ns_per_id = Some(f.bool("inventory_entry.ns_per_id")?),
                5 => inv.root_cg_set = Some(f.u32("inventory_entry.root_cg_set")?),
                6 => inv.lsmtype = Some(Lsm::from_wire(f.u32("inventory_entry.lsmtype")?)),
                8 => inv.dump_uptime = Some(f.u64("inventory_entry.dump_uptime")?),
                9 => inv.pre_dump_mode = Some(f.u32("inventory_entry.pre_dump_mode")?),
                10 => inv.tcp_close = Some(f.bool("inventory_entry.tcp_close")?),
                11 => inv.network_lock_method = Some(f.u32("inventory_entry.network_lock_method")?),
                _ => {}
            }
        }
        inv.img_version = required(img_version, start, "inventory_entry.img_version")?;
        Ok(inv)
    }
}

impl Inventory {
    /// The image format by name: `v1`, `v1.1`, or the raw number.
    pub fn format_name(&self) -> String {
        match self.img_version {
            1 => "v1".into(),
            2 => "v1.1".into(),
            n => format!("unknown ({n})"),
        }
    }

    /// How the network was locked during the dump (criu's `--network-lock`).
    pub fn network_lock_name(&self) -> Option<String> {
        self.network_lock_method.map(|m| match m {
            0 => "iptables".into(),
            1 => "nftables".into(),
            2 => "skip".into(),
            n => format!("method {n}"),
        })
    }
}

/// `pstree_entry`: one process of the dumped tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PstreeEntry {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Thread ids, the main thread (== pid) first.
    pub threads: Vec<u32>,
}

impl Decode for PstreeEntry {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let (mut pid, mut ppid, mut pgid, mut sid) = (None, None, None, None);
        let mut threads = Vec::new();
        for f in msg {
            let f = f?;
            match f.number {
                1 => pid = Some(f.u32("pstree_entry.pid")?),
                2 => ppid = Some(f.u32("pstree_entry.ppid")?),
                3 => pgid = Some(f.u32("pstree_entry.pgid")?),
                4 => sid = Some(f.u32("pstree_entry.sid")?),
                5 => f.push_u32s("pstree_entry.threads", &mut threads)?,
                _ => {}
            }
        }
        Ok(PstreeEntry {
            pid: required(pid, start, "pstree_entry.pid")?,
            ppid: required(ppid, start, "pstree_entry.ppid")?,
            pgid: required(pgid, start, "pstree_entry.pgid")?,
            sid: required(sid, start, "pstree_entry.sid")?,
            threads,
        })
    }
}

/// `task_core_entry`: the per-process part of a core image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskCore {
    /// criu's task state: 1 alive, 2 dead, 3 stopped, 6 zombie (see [`task_state_name`]).
    pub task_state: u32,
    pub exit_code: u32,
    pub personality: u32,
    pub flags: u32,
    pub blk_sigset: u64,
    /// The command name (`/proc/PID/comm`).
    pub comm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cg_set: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loginuid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_subreaper: Option<bool>,
}

impl Decode for TaskCore {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut tc = TaskCore::default();
        let (mut state, mut exit, mut pers, mut flags, mut sigset, mut comm) =
            (None, None, None, None, None, None);
        for f in msg {
            let f = f?;
            match f.number {
                1 => state = Some(f.u32("task_core_entry.task_state")?),
                2 => exit = Some(f.u32("task_core_entry.exit_code")?),
                3 => pers = Some(f.u32("task_core_entry.personality")?),
                4 => flags = Some(f.u32("task_core_entry.flags")?),
                5 => sigset = Some(f.u64("task_core_entry.blk_sigset")?),
                6 => comm = Some(f.string("task_core_entry.comm")?),
                9 => tc.cg_set = Some(f.u32("task_core_entry.cg_set")?),
                13 => tc.loginuid = Some(f.u32("task_core_entry.loginuid")?),
                14 => tc.oom_score_adj = Some(f.i32("task_core_entry.oom_score_adj")?),
                18 => tc.child_subreaper = Some(f.bool("task_core_entry.child_subreaper")?),
                _ => {}
            }
        }
        tc.task_state = required(state, start, "task_core_entry.task_state")?;
        tc.exit_code = required(exit, start, "task_core_entry.exit_code")?;
        tc.personality = required(pers, start, "task_core_entry.personality")?;
        tc.flags = required(flags, start, "task_core_entry.flags")?;
        tc.blk_sigset = required(sigset, start, "task_core_entry.blk_sigset")?;
        tc.comm = required(comm, start, "task_core_entry.comm")?;
        Ok(tc)
    }
}

/// `creds_entry`: a thread's credentials (capabilities left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub suid: u32,
    pub sgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub secbits: u32,
    pub groups: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsm_profile: Option<String>,
}

impl Decode for Creds {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut c = Creds::default();
        let mut ids: [Option<u32>; 8] = [None; 8];
        let mut secbits = None;
        for f in msg {
            let f = f?;
            match f.number {
                n @ 1..=8 => ids[n as usize - 1] = Some(f.u32("creds_entry")?),
                13 => secbits = Some(f.u32("creds_entry.secbits")?),
                14 => f.push_u32s("creds_entry.groups", &mut c.groups)?,
                15 => c.lsm_profile = Some(f.string("creds_entry.lsm_profile")?),
                _ => {}
            }
        }
        const NAMES: [&str; 8] = [
            "creds_entry.uid",
            "creds_entry.gid",
            "creds_entry.euid",
            "creds_entry.egid",
            "creds_entry.suid",
            "creds_entry.sgid",
            "creds_entry.fsuid",
            "creds_entry.fsgid",
        ];
        let mut v = [0u32; 8];
        for i in 0..8 {
            v[i] = required(ids[i], start, NAMES[i])?;
        }
        [
            c.uid, c.gid, c.euid, c.egid, c.suid, c.sgid, c.fsuid, c.fsgid,
        ] = v;
        c.secbits = required(secbits, start, "creds_entry.secbits")?;
        Ok(c)
    }
}

/// `thread_core_entry`: the per-thread part of a core image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadCore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sched_nice: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sched_policy: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sched_prio: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdeath_sig: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creds: Option<Creds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_mode: Option<u32>,
    /// The thread's own name, when it differs from the task's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
}

impl Decode for ThreadCore {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut t = ThreadCore::default();
        let (mut futex_rla, mut futex_rla_len) = (None, None);
        for f in msg {
            let f = f?;
            match f.number {
                1 => futex_rla = Some(f.u64("thread_core_entry.futex_rla")?),
                2 => futex_rla_len = Some(f.u32("thread_core_entry.futex_rla_len")?),
                3 => t.sched_nice = Some(f.sint32("thread_core_entry.sched_nice")?),
                4 => t.sched_policy = Some(f.u32("thread_core_entry.sched_policy")?),
                5 => t.sched_prio = Some(f.u32("thread_core_entry.sched_prio")?),
                8 => t.pdeath_sig = Some(f.u32("thread_core_entry.pdeath_sig")?),
                10 => t.creds = Some(Creds::decode(f.message("thread_core_entry.creds")?)?),
                11 => t.seccomp_mode = Some(f.u32("thread_core_entry.seccomp_mode")?),
                13 => t.comm = Some(f.string("thread_core_entry.comm")?),
                _ => {}
            }
        }
        required(futex_rla, start, "thread_core_entry.futex_rla")?;
        required(futex_rla_len, start, "thread_core_entry.futex_rla_len")?;
        Ok(t)
    }
}

/// `core_entry`: the one entry of `core-TID.img` (registers are not decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Core {
    /// The machine type: 1 x86_64 (see [`arch_name`]).
    pub mtype: u32,
    /// Present in the main thread's core only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc: Option<TaskCore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<KobjIds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_core: Option<ThreadCore>,
}

impl Decode for Core {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut c = Core::default();
        let mut mtype = None;
        for f in msg {
            let f = f?;
            match f.number {
                1 => mtype = Some(f.u32("core_entry.mtype")?),
                3 => c.tc = Some(TaskCore::decode(f.message("core_entry.tc")?)?),
                4 => c.ids = Some(KobjIds::decode(f.message("core_entry.ids")?)?),
                5 => {
                    c.thread_core = Some(ThreadCore::decode(f.message("core_entry.thread_core")?)?)
                }
                _ => {}
            }
        }
        c.mtype = required(mtype, start, "core_entry.mtype")?;
        Ok(c)
    }
}

/// `dump_stats_entry`: what `criu dump` measured. Times are in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpStats {
    pub freezing_time: u32,
    pub frozen_time: u32,
    pub memdump_time: u32,
    pub memwrite_time: u32,
    pub pages_scanned: u64,
    pub pages_skipped_parent: u64,
    pub pages_written: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irmap_resolve: Option<u32>,
    pub pages_lazy: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_pipes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_pipe_bufs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shpages_scanned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shpages_skipped_parent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shpages_written: Option<u64>,
}

impl Decode for DumpStats {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut s = DumpStats::default();
        let mut times: [Option<u32>; 4] = [None; 4];
        let mut pages: [Option<u64>; 3] = [None; 3];
        let mut lazy = None;
        for f in msg {
            let f = f?;
            match f.number {
                n @ 1..=4 => times[n as usize - 1] = Some(f.u32("dump_stats_entry")?),
                n @ 5..=7 => pages[n as usize - 5] = Some(f.u64("dump_stats_entry")?),
                8 => s.irmap_resolve = Some(f.u32("dump_stats_entry.irmap_resolve")?),
                9 => lazy = Some(f.u64("dump_stats_entry.pages_lazy")?),
                10 => s.page_pipes = Some(f.u64("dump_stats_entry.page_pipes")?),
                11 => s.page_pipe_bufs = Some(f.u64("dump_stats_entry.page_pipe_bufs")?),
                12 => s.shpages_scanned = Some(f.u64("dump_stats_entry.shpages_scanned")?),
                13 => {
                    s.shpages_skipped_parent =
                        Some(f.u64("dump_stats_entry.shpages_skipped_parent")?)
                }
                14 => s.shpages_written = Some(f.u64("dump_stats_entry.shpages_written")?),
                _ => {}
            }
        }
        s.freezing_time = required(times[0], start, "dump_stats_entry.freezing_time")?;
        s.frozen_time = required(times[1], start, "dump_stats_entry.frozen_time")?;
        s.memdump_time = required(times[2], start, "dump_stats_entry.memdump_time")?;
        s.memwrite_time = required(times[3], start, "dump_stats_entry.memwrite_time")?;
        s.pages_scanned = required(pages[0], start, "dump_stats_entry.pages_scanned")?;
        s.pages_skipped_parent =
            required(pages[1], start, "dump_stats_entry.pages_skipped_parent")?;
        s.pages_written = required(pages[2], start, "dump_stats_entry.pages_written")?;
        s.pages_lazy = required(lazy, start, "dump_stats_entry.pages_lazy")?;
        Ok(s)
    }
}

/// `restore_stats_entry`: what `criu restore` measured. Times are in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreStats {
    pub pages_compared: u64,
    pub pages_skipped_cow: u64,
    pub forking_time: u32,
    pub restore_time: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages_restored: Option<u64>,
}

impl Decode for RestoreStats {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let start = msg.start();
        let mut s = RestoreStats::default();
        let (mut compared, mut cow, mut forking, mut restore) = (None, None, None, None);
        for f in msg {
            let f = f?;
            match f.number {
                1 => compared = Some(f.u64("restore_stats_entry.pages_compared")?),
                2 => cow = Some(f.u64("restore_stats_entry.pages_skipped_cow")?),
                3 => forking = Some(f.u32("restore_stats_entry.forking_time")?),
                4 => restore = Some(f.u32("restore_stats_entry.restore_time")?),
                5 => s.pages_restored = Some(f.u64("restore_stats_entry.pages_restored")?),
                _ => {}
            }
        }
        s.pages_compared = required(compared, start, "restore_stats_entry.pages_compared")?;
        s.pages_skipped_cow = required(cow, start, "restore_stats_entry.pages_skipped_cow")?;
        s.forking_time = required(forking, start, "restore_stats_entry.forking_time")?;
        s.restore_time = required(restore, start, "restore_stats_entry.restore_time")?;
        Ok(s)
    }
}

/// `stats_entry`: the one entry of `stats-dump` or `stats-restore`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStats>,
}

impl Decode for StatsEntry {
    fn decode(msg: Fields<'_>) -> Result<Self, ProtoError> {
        let mut s = StatsEntry::default();
        for f in msg {
            let f = f?;
            match f.number {
                1 => s.dump = Some(DumpStats::decode(f.message("stats_entry.dump")?)?),
                2 => s.restore = Some(RestoreStats::decode(f.message("stats_entry.restore")?)?),
                _ => {}
            }
        }
        Ok(s)
    }
}

/// criu's task states (`enum __criu_task_state`, shared with compel), by name.
pub fn task_state_name(state: u32) -> String {
    match state {
        0x01 => "alive".into(),
        0x02 => "dead".into(),
        0x03 => "stopped".into(),
        0x06 => "zombie".into(),
        0x80 => "helper".into(),
        0x81 => "thread".into(),
        0xff => "undef".into(),
        n => format!("state {n}"),
    }
}

/// `core_entry.march` by name.
pub fn arch_name(mtype: u32) -> String {
    match mtype {
        1 => "x86_64".into(),
        2 => "arm".into(),
        3 => "aarch64".into(),
        4 => "ppc64".into(),
        5 => "s390".into(),
        6 => "mips".into(),
        n => format!("machine {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckpt::proto::Problem;

    fn decode<T: Decode>(buf: &[u8]) -> Result<T, ProtoError> {
        T::decode(Fields::new(buf, 0))
    }

    #[test]
    fn pstree_entry() {
        let e: PstreeEntry = decode(&[
            0x08, 0x9b, 0x01, 0x10, 0x9a, 0x01, 0x18, 0x9a, 0x01, 0x20, 0x9a, 0x01, 0x28, 0x9b,
            0x01, 0x28, 0x9c, 0x01,
        ])
        .unwrap();
        assert_eq!(
            e,
            PstreeEntry {
                pid: 155,
                ppid: 154,
                pgid: 154,
                sid: 154,
                threads: vec![155, 156]
            }
        );
    }

    #[test]
    fn missing_required_fields_are_named() {
        // pid only.
        let e = decode::<PstreeEntry>(&[0x08, 0x01]).unwrap_err();
        assert_eq!(e.problem, Problem::Missing("pstree_entry.ppid"));
        let e = decode::<Inventory>(&[0x10, 0x01]).unwrap_err();
        assert_eq!(e.problem, Problem::Missing("inventory_entry.img_version"));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // img_version 2, then field 99 (varint) and field 98 (bytes) from some future criu.
        let inv: Inventory =
            decode(&[0x08, 0x02, 0x98, 0x06, 0x01, 0x92, 0x06, 0x01, 0x00]).unwrap();
        assert_eq!(inv.img_version, 2);
        assert_eq!(inv.format_name(), "v1.1");
    }

    #[test]
    fn names() {
        assert_eq!(task_state_name(1), "alive");
        assert_eq!(task_state_name(6), "zombie");
        assert_eq!(task_state_name(42), "state 42");
        assert_eq!(arch_name(1), "x86_64");
        assert_eq!(Lsm::from_wire(2).name(), "apparmor");
    }
}
