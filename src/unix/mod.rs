//! Unix specifics (the seed's `unix_events.py`): child processes — the child watcher, the
//! async `Process` and the subprocess transport.

pub(crate) mod child;
pub(crate) mod process;
pub(crate) mod subprocess;
