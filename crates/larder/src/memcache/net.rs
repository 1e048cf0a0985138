//! Socket helpers both drivers share (they only move bytes; see [`super::exchange`]).

use std::io;

/// Reads, without waiting and without consuming, whether an idle socket holds a byte:
/// `Err(WouldBlock)` when it is open and quiet, `Ok(0)` when the peer closed it, `Ok(1)`
/// when bytes are waiting. One `recv(MSG_PEEK | MSG_DONTWAIT)`: the socket's blocking mode
/// and an async runtime's readiness state are left as they are.
#[cfg(unix)]
pub(crate) fn peek_now<S: std::os::fd::AsFd>(socket: &S) -> io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    socket2::SockRef::from(socket).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Writes what the socket takes now, without waiting: `Err(WouldBlock)` when its send
/// buffer is full. A request usually fits at once, so a driver tries this first and
/// computes its wait's bound (a clock read) only for a write that would block.
#[cfg(unix)]
pub(crate) fn send_now<S: std::os::fd::AsFd>(socket: &S, bytes: &[u8]) -> io::Result<usize> {
    // No SIGPIPE for a peer that closed: the error is returned instead, as std's writes do.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    const NO_SIGNAL: libc::c_int = 0;
    socket2::SockRef::from(socket).send_with_flags(bytes, libc::MSG_DONTWAIT | NO_SIGNAL)
}

/// Off Unix every write goes through the blocking path.
#[cfg(not(unix))]
pub(crate) fn send_now<S>(_socket: &S, _bytes: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Off Unix there is no probe: an idle connection is taken as open and quiet (stray replies
/// are still caught by the opaque and key checks of the next exchange).
#[cfg(not(unix))]
pub(crate) fn peek_now<S>(_socket: &S) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}
