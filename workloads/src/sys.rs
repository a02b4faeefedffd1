//! Thin wrappers over the system calls the workloads make directly (through `libc`, for
//! calls nix does not cover or covers with a different shape): each one checks the return
//! value and turns a failure into an [`io::Error`] carrying the errno.

use nix::libc::{self, c_int};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A `Duration` as a `timespec`.
pub fn timespec(d: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// A `timespec` as a `Duration`.
pub fn duration(t: &libc::timespec) -> std::time::Duration {
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A non-blocking call's return value: `Ok(None)` when it would have blocked, the errno
/// for any other failure, the count otherwise.
pub fn unless_would_block(ret: isize) -> io::Result<Option<usize>> {
    if ret >= 0 {
        return Ok(Some(ret as usize));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

/// `Ok(ret)` for a non-negative return value, the errno otherwise.
pub fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`cvt`] for calls returning `long` or `ssize_t`.
pub fn cvt_long(ret: i64) -> io::Result<i64> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor a system call just returned.
pub fn owned(fd: c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: the caller passes the fresh return value of a call that creates a descriptor;
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A path as a C string (paths with a NUL byte are rejected).
pub fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

/// `open(2)` with explicit flags and mode.
pub fn open(path: &Path, flags: c_int, mode: u32) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: a valid NUL-terminated path.
    owned(unsafe { libc::open(c.as_ptr(), flags, mode) })
}

/// `fcntl(fd, cmd, arg)` for the integer-argument commands.
pub fn fcntl_int(fd: RawFd, cmd: c_int, arg: c_int) -> io::Result<c_int> {
    // SAFETY: integer-argument fcntl commands do not touch memory.
    cvt(unsafe { libc::fcntl(fd, cmd, arg) })
}

/// The status flags of an open file description (`F_GETFL`).
pub fn status_flags(fd: RawFd) -> io::Result<c_int> {
    fcntl_int(fd, libc::F_GETFL, 0)
}

/// The descriptor flags (`F_GETFD`, i.e. `FD_CLOEXEC`).
pub fn fd_flags(fd: RawFd) -> io::Result<c_int> {
    fcntl_int(fd, libc::F_GETFD, 0)
}

/// The file offset (`lseek(fd, 0, SEEK_CUR)`).
pub fn offset(fd: RawFd) -> io::Result<u64> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }).map(|o| o as u64)
}

/// Moves the file offset to `pos` (`SEEK_SET`).
pub fn seek_to(fd: RawFd, pos: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_SET) }).map(|_| ())
}

/// One `read(2)`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for its length.
    cvt_long(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as i64)
        .map(|n| n as usize)
}

/// One `write(2)`.
pub fn write(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for its length.
    cvt_long(unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } as i64)
        .map(|n| n as usize)
}

/// Writes all of `data`, retrying short writes and `EINTR`.
pub fn write_all(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `pread(2)` until `buf` is full or end of file; returns the bytes read.
pub fn pread_full(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::pread(
                fd,
                rest.as_mut_ptr().cast(),
                rest.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_long(n as i64) {
            Ok(0) => break,
            Ok(n) => done += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `pwrite(2)` of all of `data` at `offset`.
pub fn pwrite_all(fd: RawFd, data: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let rest = &data[done..];
        // SAFETY: the buffer is valid for its length.
        let n = unsafe {
            libc::pwrite(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        match cvt_long(n as i64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads from a non-blocking descriptor until it says `EAGAIN` (or end of file).
pub fn read_available(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Bytes waiting to be read (`ioctl(FIONREAD)`): pipes, FIFOs, stream sockets, ttys.
pub fn queued_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int.
    cvt(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) })?;
    Ok(n as usize)
}

/// Bytes waiting in a socket's send queue (`ioctl(SIOCOUTQ)`).
pub fn unsent_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) })?;
    Ok(n as usize)
}

/// `pipe2(2)`: (read end, write end).
pub fn pipe(flags: c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    Ok((owned(fds[0])?, owned(fds[1])?))
}

/// `socketpair(AF_UNIX, kind, 0)`.
pub fn socketpair(kind: c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair writes two ints.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
    Ok((owned(fds[0])?, owned(fds[1])?))
}

/// A memory mapping made with [`mmap`]; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a Mapping is plain memory; the workloads synchronise their own access to it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The start address.
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mmap refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw start pointer.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// A copy of `len` bytes at `offset`, read with volatile loads (another process or the
    /// kernel may change the memory behind the program's back). The range must be readable.
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.len, "read past the end of the mapping");
        (0..len)
            // SAFETY: inside the mapping (asserted); readable by the caller's contract.
            .map(|i| unsafe { self.ptr.add(offset + i).read_volatile() })
            .collect()
    }

    /// Writes `data` at `offset` with volatile stores. The range must be writable.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.len,
            "write past the end of the mapping"
        );
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapping (asserted); writable by the caller's contract.
            unsafe { self.ptr.add(offset + i).write_volatile(*b) }
        }
    }

    /// The mapping as a mutable byte slice, for bulk work on private memory only this
    /// process touches. The whole mapping must be readable and writable.
    #[allow(clippy::mut_from_ref)]
    pub fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: the mapping is valid for len bytes; the caller guarantees exclusive use.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// `mmap(2)` of `len` bytes; `fd` `None` means an anonymous mapping.
pub fn mmap(
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: Option<RawFd>,
    offset: u64,
) -> io::Result<Mapping> {
    let flags = if fd.is_none() {
        flags | libc::MAP_ANONYMOUS
    } else {
        flags
    };
    // SAFETY: a new mapping at an address of the kernel's choosing aliases nothing.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            fd.unwrap_or(-1),
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping {
        ptr: ptr.cast(),
        len,
    })
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() }
}

/// An integer socket option.
pub fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut v: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: the option is an int and len says so.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len) })?;
    Ok(v)
}

/// `getsockopt` of an option of up to `len` bytes, as the bytes the kernel gave back.
pub fn getsockopt_bytes(fd: RawFd, level: c_int, name: c_int, len: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; len];
    let mut l = len as libc::socklen_t;
    // SAFETY: getsockopt writes at most `l` bytes into `v`.
    cvt(unsafe { libc::getsockopt(fd, level, name, v.as_mut_ptr().cast(), &mut l) })?;
    v.truncate(l as usize);
    Ok(v)
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: the option is an int and the length says so.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Waits up to `timeout_ms` for `events` on `fd`; returns the revents (0 on timeout).
pub fn poll_one(fd: &impl AsRawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        match cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) }) {
            Ok(0) => return Ok(0),
            Ok(_) => return Ok(p.revents),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `O_LARGEFILE` as the kernel reports it in `F_GETFL` (libc says 0 on 64-bit, where the
/// flag is implied, but the kernel still sets the bit).
pub const KERNEL_O_LARGEFILE: c_int = 0o100000;

const ACCESS_MODES: &[(c_int, &str)] = &[
    (libc::O_RDONLY, "O_RDONLY"),
    (libc::O_WRONLY, "O_WRONLY"),
    (libc::O_RDWR, "O_RDWR"),
];

const STATUS_FLAGS: &[(c_int, &str)] = &[
    (libc::O_APPEND, "O_APPEND"),
    (libc::O_NONBLOCK, "O_NONBLOCK"),
    (libc::O_SYNC, "O_SYNC"),
    (libc::O_DSYNC, "O_DSYNC"),
    (libc::O_DIRECT, "O_DIRECT"),
    (libc::O_NOATIME, "O_NOATIME"),
    (libc::O_ASYNC, "O_ASYNC"),
    (KERNEL_O_LARGEFILE, "O_LARGEFILE"),
    (libc::O_PATH, "O_PATH"),
    (libc::O_DIRECTORY, "O_DIRECTORY"),
];

/// The access mode and status flags of `flags` by name, e.g. `O_RDWR|O_NONBLOCK`.
pub fn open_flags_text(flags: c_int) -> String {
    let mut parts: Vec<String> = ACCESS_MODES
        .iter()
        .filter(|(m, _)| flags & libc::O_ACCMODE == *m)
        .map(|(_, n)| n.to_string())
        .collect();
    let mut rest = flags & !libc::O_ACCMODE;
    for (bit, name) in STATUS_FLAGS {
        if rest & bit == *bit && *bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#o}"));
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_by_name() {
        assert_eq!(
            open_flags_text(libc::O_RDWR | libc::O_NONBLOCK),
            "O_RDWR|O_NONBLOCK"
        );
        assert_eq!(
            open_flags_text(libc::O_WRONLY | libc::O_APPEND | KERNEL_O_LARGEFILE),
            "O_WRONLY|O_APPEND|O_LARGEFILE"
        );
        assert_eq!(open_flags_text(libc::O_RDONLY), "O_RDONLY");
    }

    #[test]
    fn pipe_queue_and_offsets() {
        let (r, w) = pipe(libc::O_NONBLOCK).unwrap();
        write_all(w.as_raw_fd(), b"hello").unwrap();
        assert_eq!(queued_bytes(r.as_raw_fd()).unwrap(), 5);
        assert_eq!(read_available(r.as_raw_fd()).unwrap(), b"hello");
        let e = offset(r.as_raw_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESPIPE));
    }
}
