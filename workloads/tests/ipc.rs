//! The `ipc` workloads on the host: each passes when left alone, and each catches its
//! state changed from outside the way a broken restore would change it (data taken out of
//! a pipe, FIFO or socket, a System V object changed from inside its namespace, a counter,
//! mask, watch or timer changed through a copy of the workload's descriptor).

mod common;

use common::*;
use nix::libc;
use std::os::fd::AsRawFd;
use std::time::Duration;

const FAST: &[&str] = &["--tick-ms", "5"];
const GRACE: Duration = Duration::from_secs(3);

fn started(bin: &str) -> (Running, String) {
    let mut w = Running::start(bin, FAST);
    let ready = w.wait_ready();
    (w, ready.detail)
}

fn read_some(fd: &impl AsRawFd, n: usize) -> usize {
    let mut buf = vec![0u8; n];
    // SAFETY: the buffer is valid for n bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), n) };
    assert!(r > 0, "read: {}", std::io::Error::last_os_error());
    r as usize
}

#[test]
fn pipes_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_pipes"), FAST);
    assert!(
        detail.starts_with("3 pipes kept their unread data (69536 bytes in all)"),
        "{detail}"
    );
}

#[test]
fn pipes_catch_data_taken_out() {
    if !root_or_skip("pipes_catch_data_taken_out") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_pipes"));
    let fd = detail_number(&detail, "pipe1") as i32;
    assert_eq!(read_some(&steal_fd(w.pid(), fd), 10), 10);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "pipe 1 (fd {fd}): 2990 bytes queued, expected 3000"
        )],
    );
}

#[test]
fn fifo_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_fifo"), FAST);
    assert!(
        detail.starts_with("the FIFO kept its 5000 unread bytes"),
        "{detail}"
    );
}

#[test]
fn fifo_catches_data_taken_out() {
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_fifo"));
    let fd = detail_number(&detail, "reader");
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(w.path("fifo"))
        .unwrap();
    assert_eq!(read_some(&reader, 100), 100);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("fifo (fd {fd}): 4900 bytes queued, expected 5000")],
    );
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn unixstream_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_unixstream"), FAST);
    assert!(
        detail.starts_with("SOCK_STREAM sockets kept 7 queued messages"),
        "{detail}"
    );
}

#[test]
fn unixdgram_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_unixdgram"), FAST);
    assert!(
        detail.starts_with("SOCK_DGRAM sockets kept 7 queued messages"),
        "{detail}"
    );
}

#[test]
fn unixseqpacket_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_unixseqpacket"), FAST);
    assert!(
        detail.starts_with("SOCK_SEQPACKET sockets kept 7 queued messages"),
        "{detail}"
    );
}

#[test]
fn unixdgram_catches_a_message_taken_out() {
    if !root_or_skip("unixdgram_catches_a_message_taken_out") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_unixdgram"));
    let fd = detail_number(&detail, "b") as i32;
    assert_eq!(read_some(&steal_fd(w.pid(), fd), 1000), 10);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("a -> b (fd {fd}): SIOCINQ: expected 10, got 300")],
    );
}

#[test]
fn unixstream_catches_bytes_taken_out() {
    if !root_or_skip("unixstream_catches_bytes_taken_out") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_unixstream"));
    let fd = detail_number(&detail, "b") as i32;
    assert_eq!(read_some(&steal_fd(w.pid(), fd), 5), 5);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("a -> b (fd {fd}): SIOCINQ: expected 311, got 306")],
    );
}

#[test]
fn unix_sockets_pass_with_control_messages() {
    for bin in [
        env!("CARGO_BIN_EXE_unixstream"),
        env!("CARGO_BIN_EXE_unixdgram"),
        env!("CARGO_BIN_EXE_unixseqpacket"),
    ] {
        for (args, says) in [
            (
                ["--passcred", "1", "--pass-fd", "0"],
                "each to b with the sender's SCM_CREDENTIALS,",
            ),
            (
                ["--passcred", "0", "--pass-fd", "1"],
                "passed.dat's descriptor with its message,",
            ),
            (
                ["--passcred", "1", "--pass-fd", "1"],
                "SCM_CREDENTIALS and passed.dat's descriptor",
            ),
            (
                ["--accepted-names", "0", "--pass-fd", "0"],
                " and options over",
            ),
        ] {
            let all: Vec<&str> = FAST.iter().copied().chain(args).collect();
            let detail = passes(bin, &all);
            assert!(detail.contains(says), "{bin} {args:?}: {detail}");
        }
    }
}

#[test]
fn unixstream_catches_a_changed_passed_file() {
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_unixstream"),
        &["--tick-ms", "5", "--pass-fd", "1"],
    );
    w.wait_ready();
    // The descriptor in the queue is still passed.dat's; change the file under it, as a
    // restore that passed another file (or a copy) would look to its receiver.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(w.path("passed.dat"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"\xff\xfe", 1000).unwrap();
    w.wait_progress_increase();
    let (code, verdict) = w.verify();
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            "content of passed.dat (received from the a -> b queue) fd ",
            "differs at offset 1000",
        ],
    );
}

#[test]
fn unixdgram_catches_a_lost_passcred() {
    if !root_or_skip("unixdgram_catches_a_lost_passcred") {
        return;
    }
    let mut w = Running::start(
        env!("CARGO_BIN_EXE_unixdgram"),
        &["--tick-ms", "5", "--passcred", "1"],
    );
    let detail = w.wait_ready().detail;
    let fd = detail_number(&detail, "b") as i32;
    let stolen = steal_fd(w.pid(), fd);
    let off: libc::c_int = 0;
    // SAFETY: an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            stolen.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("b (fd {fd}): SO_PASSCRED: expected 1, got 0")],
    );
}

#[test]
fn sysvmsg_passes() {
    if !root_or_skip("sysvmsg_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_sysvmsg"), FAST);
    assert!(
        detail.starts_with("2 message queues kept ids, modes, limits and 4 messages"),
        "{detail}"
    );
}

#[test]
fn sysvmsg_catches_a_message_taken_from_its_namespace() {
    if !root_or_skip("sysvmsg_catches_a_message_taken_from_its_namespace") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_sysvmsg"));
    let id = detail_number(&detail, "queue") as i32;
    let got = in_namespace_of(w.pid(), "ipc", move || {
        let mut buf = [0u8; 512];
        // SAFETY: a buffer with room for the type and 256 bytes.
        unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), 256, 0, libc::IPC_NOWAIT) }
    });
    assert_eq!(got, 10);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "queue key 0x5eed0201 (id {id}): 3 messages (105 bytes) queued, expected 4 (115 bytes)"
        )],
    );
}

#[test]
fn sysvsem_passes() {
    if !root_or_skip("sysvsem_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_sysvsem"), FAST);
    assert!(
        detail.starts_with("2 semaphore sets kept ids, modes and all 5 values"),
        "{detail}"
    );
}

#[test]
fn sysvsem_catches_a_changed_value() {
    if !root_or_skip("sysvsem_catches_a_changed_value") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_sysvsem"));
    let id = detail_number(&detail, "set") as i32;
    // SAFETY: SETVAL takes an int.
    let r = in_namespace_of(w.pid(), "ipc", move || unsafe {
        libc::semctl(id, 2, libc::SETVAL, 1)
    });
    assert_eq!(r, 0);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "semaphore set key 0x5eed0101 (id {id}): values: expected [3, 0, 7, 32767], got [3, 0, 1, 32767]"
        )],
    );
}

#[test]
fn sysvshm_passes() {
    if !root_or_skip("sysvshm_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_sysvshm"), FAST);
    assert!(
        detail.starts_with("3 shared memory segments kept ids, sizes"),
        "{detail}"
    );
}

#[test]
fn sysvshm_catches_changed_segment_content() {
    if !root_or_skip("sysvshm_catches_changed_segment_content") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_sysvshm"));
    let id = detail_number(&detail, "rw") as i32;
    in_namespace_of(w.pid(), "ipc", move || {
        // SAFETY: attaching, writing one byte inside the 64 KiB segment, detaching.
        unsafe {
            let p = libc::shmat(id, std::ptr::null(), 0) as *mut u8;
            assert_ne!(p as isize, -1, "{}", std::io::Error::last_os_error());
            *p.add(7) ^= 0xff;
            libc::shmdt(p.cast());
        }
    });
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("segment key 0x5eed0001 (id {id}) attached at 0x"),
            "differs at offset 7",
        ],
    );
}

#[test]
fn posixshm_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_posixshm"), FAST);
    assert!(
        detail.starts_with("2 POSIX shared memory objects"),
        "{detail}"
    );
}

#[test]
fn posixshm_catches_a_changed_object() {
    use std::os::unix::fs::FileExt;
    let (mut w, _) = started(env!("CARGO_BIN_EXE_posixshm"));
    let path = format!("/dev/shm/crtest-{}-a", w.pid());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"!!", 10).unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("{path} mapping at 0x"), "differs at offset 10"],
    );
    assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
}

#[test]
fn eventfd_passes_in_both_modes() {
    let detail = passes(env!("CARGO_BIN_EXE_eventfd"), FAST);
    assert!(
        detail.starts_with("2 eventfds kept their counts and flags"),
        "{detail}"
    );
    let detail = passes(
        env!("CARGO_BIN_EXE_eventfd"),
        &["--tick-ms", "5", "--semaphore", "1"],
    );
    assert!(
        detail.contains("and the counter its semaphore mode"),
        "{detail}"
    );
}

#[test]
fn eventfd_catches_a_changed_count() {
    if !root_or_skip("eventfd_catches_a_changed_count") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_eventfd"));
    let fd = detail_number(&detail, "counter") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: an eventfd takes an 8-byte write.
    assert_eq!(
        unsafe { libc::write(stolen.as_raw_fd(), 1u64.to_ne_bytes().as_ptr().cast(), 8) },
        8
    );
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &["eventfd-count: expected 12345, got 12346"],
    );
}

#[test]
fn epoll_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_epoll"), FAST);
    assert!(
        detail.starts_with("the epoll interest list (5 targets"),
        "{detail}"
    );
}

#[test]
fn epoll_catches_a_target_no_longer_ready() {
    if !root_or_skip("epoll_catches_a_target_no_longer_ready") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_epoll"));
    let ep = detail_number(&detail, "epoll");
    let fd = detail_number(&detail, "pipe") as i32;
    assert_eq!(read_some(&steal_fd(w.pid(), fd), 100), 10);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "epoll fd {ep}: pipe (0x1001) not reported ready for EPOLLIN"
        )],
    );
}

#[test]
fn inotify_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_inotify"), FAST);
    assert!(
        detail.starts_with("2 inotify watches kept their inodes and masks"),
        "{detail}"
    );
}

#[test]
fn inotify_catches_a_removed_watch() {
    if !root_or_skip("inotify_catches_a_removed_watch") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_inotify"));
    let fd = detail_number(&detail, "inotify") as i32;
    let wd = detail_number(&detail, "dir-wd") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: plain syscall on our copy of the descriptor.
    assert_eq!(unsafe { libc::inotify_rm_watch(stolen.as_raw_fd(), wd) }, 0);
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[
            &format!("inotify fd {fd}: watches are [wd 2 "),
            "expected [wd 1 ",
        ],
    );
}

#[test]
fn signalfd_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_signalfd"), FAST);
    assert!(
        detail.starts_with("2 signalfds kept their masks and flags"),
        "{detail}"
    );
}

#[test]
fn signalfd_catches_a_changed_mask() {
    if !root_or_skip("signalfd_catches_a_changed_mask") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_signalfd"));
    let fd = detail_number(&detail, "main") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: a valid set; signalfd on an existing signalfd changes its mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        assert_eq!(
            libc::signalfd(stolen.as_raw_fd(), &set, 0),
            stolen.as_raw_fd()
        );
    }
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "signalfd main fd {fd} (O_RDWR|O_NONBLOCK): sigmask expected {{SIGUSR1, SIGRTMIN+2}}, got {{SIGUSR1}}"
        )],
    );
}

#[test]
fn timerfd_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_timerfd"), FAST);
    assert!(
        detail.starts_with("3 timerfds kept clocks, flags, intervals"),
        "{detail}"
    );
}

#[test]
fn timerfd_catches_a_disarmed_timer() {
    if !root_or_skip("timerfd_catches_a_disarmed_timer") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_timerfd"));
    let fd = detail_number(&detail, "periodic") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // SAFETY: a zeroed itimerspec disarms.
    unsafe {
        let zero: libc::itimerspec = std::mem::zeroed();
        assert_eq!(
            libc::timerfd_settime(stolen.as_raw_fd(), 0, &zero, std::ptr::null_mut()),
            0
        );
    }
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("timerfd periodic (fd {fd}): disarmed (it_value 0, it_interval 0), expected an interval of 20 ms")],
    );
}

#[test]
fn timerfd_catches_a_periodic_timer_left_stopped() {
    if !root_or_skip("timerfd_catches_a_periodic_timer_left_stopped") {
        return;
    }
    let (mut w, detail) = started(env!("CARGO_BIN_EXE_timerfd"));
    let fd = detail_number(&detail, "periodic") as i32;
    let stolen = steal_fd(w.pid(), fd);
    // What criu 3.17 makes of a periodic timer dumped while expired and unread:
    // timerfd_settime with it_value 0 (which disarms) and the interval, then one pending
    // expiration put back with TFD_IOC_SET_TICKS.
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    // SAFETY: valid structs; TFD_IOC_SET_TICKS (_IOW('T', 0, u64)) reads one u64.
    unsafe {
        assert_eq!(
            libc::timerfd_settime(stolen.as_raw_fd(), 0, &spec, std::ptr::null_mut()),
            0
        );
        let ticks: u64 = 1;
        // Without CONFIG_CHECKPOINT_RESTORE the ioctl is refused; the timer is stopped all
        // the same.
        let _ = libc::ioctl(stolen.as_raw_fd(), 0x4008_5400, &ticks);
    }
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!(
            "timerfd periodic (fd {fd}): stopped: remaining time 0 ms with an interval of 20 ms"
        )],
    );
}

#[test]
fn futex_passes() {
    let detail = passes(env!("CARGO_BIN_EXE_futex"), FAST);
    assert!(
        detail.starts_with("4 futex waiter threads and a waiting process"),
        "{detail}"
    );
}

#[test]
fn bpfmap_passes() {
    if !root_or_skip("bpfmap_passes") {
        return;
    }
    let detail = passes(env!("CARGO_BIN_EXE_bpfmap"), FAST);
    assert!(
        detail.starts_with("an array map of 64 and a hash map of 20"),
        "{detail}"
    );
}

#[test]
fn bpfmap_catches_a_changed_entry() {
    if !root_or_skip("bpfmap_catches_a_changed_entry") {
        return;
    }
    let mut w = Running::start(env!("CARGO_BIN_EXE_bpfmap"), FAST);
    let ready = w.wait_ready();
    let fd = detail_number(&ready.detail, "array") as i32;
    let copy = steal_fd(w.pid(), fd);
    crtest_workloads::ipc::bpfmap::update_elem(
        std::os::fd::AsRawFd::as_raw_fd(&copy),
        &5u32.to_ne_bytes(),
        &[0xee; 16],
    )
    .unwrap();
    let (code, verdict) = w.outcome_within(GRACE);
    assert_fail(
        code,
        &verdict,
        &w.log(),
        &[&format!("bpf map crt_array (fd {fd}): entry 5")],
    );
}
