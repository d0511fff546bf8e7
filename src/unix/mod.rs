//! What only Unix has, on top of the loop (the seed's `unix_events.py`): signal handlers
//! that run on the loop. Each file is one concept; the system calls live in `sys/`.

pub(crate) mod signal;
