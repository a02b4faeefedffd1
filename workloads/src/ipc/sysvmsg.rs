//! `sysvmsg`: a System V message queue with messages waiting, in the workload's own IPC
//! namespace (needs root).
//!
//! Queue `0x5eed0201` (mode 0600, `msg_qbytes` 8192) holds four messages: type 1 (10
//! bytes), type 2 (100 bytes), type 1 (5 bytes), type 5 (empty). A second, private queue
//! stays empty. Every tick the workload checks both queues' ids, modes, message counts,
//! byte counts and `msg_qbytes`, and that the namespace holds just these two queues. On
//! SIGTERM it checks the same, receives every message in order (type and bytes), then
//! sends and receives by type once more.

use crate::args::{Args, Opt};
use crate::check::{compare_bytes, pattern, Problems};
use crate::ipc::sysv;
use crate::protocol::{errno_text, Workload};
use crate::{steady, sys};
use nix::libc;

/// Program name.
pub const NAME: &str = "sysvmsg";
/// The key of the queue with messages.
pub const KEY: i32 = 0x5eed_0201;
/// Command-line options.
pub const OPTIONS: &[Opt] = &[steady::TICK_MS];

const QBYTES: u64 = 8192;

fn messages() -> Vec<(i64, Vec<u8>)> {
    vec![
        (1, pattern(91, 10)),
        (2, pattern(92, 100)),
        (1, pattern(93, 5)),
        (5, Vec::new()),
    ]
}

#[repr(C)]
struct Msg {
    mtype: libc::c_long,
    text: [u8; 256],
}

fn send(id: i32, mtype: i64, data: &[u8]) -> std::io::Result<()> {
    let mut m = Msg {
        mtype,
        text: [0; 256],
    };
    m.text[..data.len()].copy_from_slice(data);
    // SAFETY: a msgbuf with data.len() bytes of text.
    sys::cvt(unsafe { libc::msgsnd(id, (&m as *const Msg).cast(), data.len(), libc::IPC_NOWAIT) })
        .map(|_| ())
}

/// Receives one message of `mtype` (0: any) without waiting; `None` if there is none.
fn receive(id: i32, mtype: i64) -> std::io::Result<Option<(i64, Vec<u8>)>> {
    let mut m = Msg {
        mtype: 0,
        text: [0; 256],
    };
    // SAFETY: a msgbuf with room for 256 bytes of text.
    let n = unsafe {
        libc::msgrcv(
            id,
            (&mut m as *mut Msg).cast(),
            256,
            mtype,
            libc::IPC_NOWAIT,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOMSG) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some((m.mtype, m.text[..n as usize].to_vec())))
}

fn stat(id: i32) -> std::io::Result<libc::msqid_ds> {
    // SAFETY: IPC_STAT fills the struct.
    unsafe {
        let mut ds: libc::msqid_ds = std::mem::zeroed();
        sys::cvt(libc::msgctl(id, libc::IPC_STAT, &mut ds))?;
        Ok(ds)
    }
}

struct Queue {
    label: String,
    key: i32,
    id: i32,
    count: u64,
    bytes: u64,
    qbytes: u64,
    mode: u32,
}

struct State {
    full: Queue,
    empty: Queue,
}

fn setup() -> Result<State, String> {
    sysv::own_namespace()?;
    // SAFETY: plain syscalls.
    let id = sys::cvt(unsafe { libc::msgget(KEY, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) })
        .map_err(|e| format!("msgget({KEY:#x}): {e}"))?;
    let mut ds = stat(id).map_err(|e| format!("msgctl(IPC_STAT): {e}"))?;
    ds.msg_qbytes = QBYTES as _;
    sys::cvt(unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) })
        .map_err(|e| format!("msgctl(IPC_SET msg_qbytes): {e}"))?;
    for (t, d) in messages() {
        send(id, t, &d).map_err(|e| format!("msgsnd: {e}"))?;
    }
    let private = sys::cvt(unsafe { libc::msgget(libc::IPC_PRIVATE, 0o640) })
        .map_err(|e| format!("msgget(IPC_PRIVATE): {e}"))?;
    let bytes = messages().iter().map(|(_, d)| d.len() as u64).sum();
    let private_qbytes = stat(private)
        .map_err(|e| format!("msgctl(IPC_STAT): {e}"))?
        .msg_qbytes as u64;
    Ok(State {
        full: Queue {
            label: format!("queue key {KEY:#x} (id {id})"),
            key: KEY,
            id,
            count: 4,
            bytes,
            qbytes: QBYTES,
            mode: 0o600,
        },
        empty: Queue {
            label: format!("private queue (id {private})"),
            key: 0,
            id: private,
            count: 0,
            bytes: 0,
            qbytes: private_qbytes,
            mode: 0o640,
        },
    })
}

impl State {
    fn check(&self) -> Result<(), String> {
        let mut p = Problems::new();
        p.take(sysv::expect_objects(
            "msg",
            &[
                (self.full.key, self.full.id),
                (self.empty.key, self.empty.id),
            ],
        ));
        for q in [&self.full, &self.empty] {
            match stat(q.id) {
                Ok(ds) => {
                    let got = (ds.msg_qnum, ds.__msg_cbytes);
                    if got != (q.count, q.bytes) {
                        p.push(format!(
                            "{}: {} messages ({} bytes) queued, expected {} ({} bytes)",
                            q.label, got.0, got.1, q.count, q.bytes
                        ));
                    }
                    p.expect_eq(&format!("{}: msg_qbytes", q.label), q.qbytes, ds.msg_qbytes);
                    p.expect_eq(
                        &format!("{}: mode", q.label),
                        format!("{:o}", q.mode),
                        format!("{:o}", ds.msg_perm.mode & 0o777),
                    );
                }
                Err(e) => p.push(format!("{}: msgctl(IPC_STAT): {}", q.label, errno_text(&e))),
            }
        }
        p.into_result()
    }

    fn drain_and_use(&self) -> Result<(), String> {
        let mut p = Problems::new();
        for (n, (t, d)) in messages().into_iter().enumerate() {
            match receive(self.full.id, 0) {
                Ok(Some((got_t, got_d))) => {
                    p.expect_eq(
                        &format!("{}: type of message #{}", self.full.label, n + 1),
                        t,
                        got_t,
                    );
                    p.check(compare_bytes(
                        &format!("{}: message #{}", self.full.label, n + 1),
                        &d,
                        &got_d,
                    ));
                }
                Ok(None) => p.push(format!("{}: message #{} missing", self.full.label, n + 1)),
                Err(e) => p.push(format!("{}: msgrcv: {}", self.full.label, errno_text(&e))),
            }
        }
        match receive(self.full.id, 0) {
            Ok(None) => {}
            Ok(Some((t, d))) => p.push(format!(
                "{}: an extra message of type {t} ({} bytes)",
                self.full.label,
                d.len()
            )),
            Err(e) => p.push(format!("{}: msgrcv: {}", self.full.label, errno_text(&e))),
        }
        let sent = send(self.empty.id, 3, b"three").and_then(|_| send(self.empty.id, 4, b"four"));
        match sent.and_then(|_| receive(self.empty.id, 4)) {
            Ok(Some((4, d))) if d == b"four" => {}
            other => p.push(format!(
                "{}: receiving type 4 after sending 3 and 4 gave {other:?}",
                self.empty.label
            )),
        }
        p.into_result()
    }
}

/// The workload; returns the verdict (setup errors exit through [`Workload::setup_failed`]).
pub fn run(wl: &mut Workload, args: &Args) -> Result<String, String> {
    let st = setup().unwrap_or_else(|e| wl.setup_failed(&e));
    st.check().unwrap_or_else(|e| wl.setup_failed(&e));
    let detail = format!(
        "own IPC namespace; queue={} (key {KEY:#x}, 4 messages, 115 bytes) private={} (empty)",
        st.full.id, st.empty.id
    );
    let ticks = steady::ready_then_tick(wl, args, &detail, |_| st.check())?;
    st.check()?;
    st.drain_and_use()?;
    Ok(format!(
        "2 message queues kept ids, modes, limits and 4 messages over {ticks} checks; each message came back in order with its type, and the queues still work"
    ))
}
