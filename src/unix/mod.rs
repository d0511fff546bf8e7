//! Unix specifics (the seed's `unix_events.py`): child processes — the child watcher and the
//! async `Process`.

pub(crate) mod child;
pub(crate) mod process;
