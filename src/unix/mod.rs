//! Unix specifics (asyncio's `unix_events.py`): pipe transports and their streams.

mod pipe;

pub use pipe::{
    ReadPipeTransport, WritePipeTransport, connect_read_pipe, connect_write_pipe, open_read_pipe,
    open_write_pipe, stdin, stdout,
};
