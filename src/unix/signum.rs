//! The signal numbers people handle and send, as this platform numbers them (asyncio's
//! `signal.SIGTERM` & co.), so that a program needs no `libc` to name one.

use std::ffi::c_int;

use crate::sys;

/// Hang-up: the terminal went away; daemons take it as "reload the configuration".
pub const SIGHUP: c_int = sys::SIGHUP;
/// Interrupt: Ctrl-C.
pub const SIGINT: c_int = sys::SIGINT;
/// Quit: Ctrl-\.
pub const SIGQUIT: c_int = sys::SIGQUIT;
/// Kill: cannot be caught (`add_signal_handler` refuses it); what `Process::kill` sends.
pub const SIGKILL: c_int = sys::SIGKILL;
/// User-defined signal 1.
pub const SIGUSR1: c_int = sys::SIGUSR1;
/// User-defined signal 2.
pub const SIGUSR2: c_int = sys::SIGUSR2;
/// Broken pipe: a write to a pipe or socket whose reader has gone.
pub const SIGPIPE: c_int = sys::SIGPIPE;
/// Alarm clock.
pub const SIGALRM: c_int = sys::SIGALRM;
/// Termination request: what `Process::terminate` and `kill(1)` send.
pub const SIGTERM: c_int = sys::SIGTERM;
/// A child stopped or exited.
pub const SIGCHLD: c_int = sys::SIGCHLD;
/// The terminal's window size changed.
pub const SIGWINCH: c_int = sys::SIGWINCH;
