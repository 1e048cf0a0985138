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

/// Off Unix there is no probe: an idle connection is taken as open and quiet (stray replies
/// are still caught by the opaque and key checks of the next exchange).
#[cfg(not(unix))]
pub(crate) fn peek_now<S>(_socket: &S) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}
