//! What the pipe transport tests share: pipes, FIFOs and ptys, blocking-mode probes, and
//! transports connected with a recording protocol.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tulip::transports::ExtraInfo;
use tulip::unix::{ReadPipeTransport, WritePipeTransport, connect_read_pipe, connect_write_pipe};

use crate::proto_support::*;

// ---- helpers ----------------------------------------------------------------------------

/// A pipe, close-on-exec (other tests spawn children): (read end, write end). Not
/// `std::io::pipe`, which is newer than the crate's `rust-version`.
pub(crate) fn pipe() -> (File, File) {
    use std::os::fd::FromRawFd;
    let mut fds = [-1 as libc::c_int; 2];
    #[cfg(target_os = "linux")]
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(r, 0, "pipe: {}", io::Error::last_os_error());
    #[cfg(not(target_os = "linux"))]
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor just opened sets only its close-on-exec flag.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both were just opened by pipe and nothing else owns them.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

pub(crate) fn flags(fd: RawFd) -> libc::c_int {
    // SAFETY: F_GETFL on a descriptor the caller holds open reads its flags only.
    let f = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(f >= 0, "F_GETFL: {}", io::Error::last_os_error());
    f
}

pub(crate) fn is_nonblocking(fd: RawFd) -> bool {
    flags(fd) & libc::O_NONBLOCK != 0
}

pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_SETFL on a descriptor the caller holds open changes only its flags.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFL, flags(fd) | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "F_SETFL: {}", io::Error::last_os_error());
}

/// Reads from a non-blocking pipe end on the loop until `n` bytes or EOF, within `secs`.
pub(crate) async fn read_pipe(r: &mut File, n: usize, secs: f64) -> (Vec<u8>, bool) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
    while got.len() < n {
        match r.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < until,
                    "{} of {n} bytes in {secs} s",
                    got.len()
                );
                tulip::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    (got, false)
}

/// Reads a non-blocking pipe end on the loop until EOF, within `secs`.
pub(crate) async fn read_pipe_to_eof(r: &mut File, secs: f64) -> Vec<u8> {
    let (got, eof) = read_pipe(r, usize::MAX, secs).await;
    assert!(eof);
    got
}

pub(crate) async fn read_transport(p: &Probe, fd: impl Into<OwnedFd>) -> ReadPipeTransport {
    let (t, _) = connect_read_pipe(|| Rec::new(p), fd)
        .await
        .expect("connect_read_pipe");
    t
}

pub(crate) async fn write_transport(p: &Probe, fd: impl Into<OwnedFd>) -> WritePipeTransport {
    let (t, _) = connect_write_pipe(|| Rec::new(p), fd)
        .await
        .expect("connect_write_pipe");
    t
}

pub(crate) fn pipe_fd(info: Option<ExtraInfo>) -> RawFd {
    match info {
        Some(ExtraInfo::Pipe(fd)) => fd.as_raw_fd().expect("an open pipe"),
        other => panic!("no \"pipe\" extra info: {other:?}"),
    }
}

/// A fresh path in the temp dir, removed when dropped.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl TempPath {
    pub(crate) fn new(tag: &str) -> TempPath {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("tulip-pipe-{}-{tag}-{n}", std::process::id());
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// A FIFO in the temp dir, opened at both ends: (read end, write end).
pub(crate) fn fifo() -> (TempPath, File, File) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = TempPath::new("fifo");
    let c = std::ffi::CString::new(path.0.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo: {}", io::Error::last_os_error());
    // A non-blocking open of the read end succeeds with no writer yet; then the write end.
    let rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path.0)
        .expect("open FIFO for reading");
    let wr = std::fs::OpenOptions::new()
        .write(true)
        .open(&path.0)
        .expect("open FIFO for writing");
    (path, rd, wr)
}

/// A pty pair: (master, slave), or `None` where the system has none for us.
pub(crate) fn openpty() -> Option<(File, File)> {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors into `m` and `s`; the name, termios and window
    // size pointers may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r != 0 {
        eprintln!("openpty: {}: skipped", io::Error::last_os_error());
        return None;
    }
    // SAFETY: both were just opened by openpty and nothing else owns them.
    Some(unsafe { (File::from_raw_fd(m), File::from_raw_fd(s)) })
}

/// Raw mode on a tty: no echo, no line discipline (CPython's `tty.setraw`).
pub(crate) fn set_raw(f: &File) {
    // SAFETY: an all-zero termios is a valid out-parameter for tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is an open tty; `t` is valid for writes.
    let r = unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) };
    assert_eq!(r, 0);
    // SAFETY: `t` is a termios that tcgetattr filled.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: `t` is a valid termios for the open tty `f`.
    let r = unsafe { libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) };
    assert_eq!(r, 0);
}
