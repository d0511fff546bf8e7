//! What only Unix has, on top of the loop (the seed's `unix_events.py`): signal handlers
//! that run on the loop, pipe transports and their streams. Each file is one concept; the
//! system calls live in `sys/`.

pub(crate) mod child;
mod pipe;
pub(crate) mod process;
pub(crate) mod signal;
mod signum;
pub(crate) mod subprocess;

pub use process::{Communicate, Communicated, Redirect, SubprocessOptions, Wait};
pub use signal::{Signal, SignalRecv, signal};
pub use signum::{
    SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
    SIGWINCH,
};

pub use pipe::{
    ReadPipeTransport, WritePipeTransport, connect_read_pipe, connect_write_pipe, open_read_pipe,
    open_write_pipe, stdin, stdout,
};
