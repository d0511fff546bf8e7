//! The ready queue: what runs in the current or the next iteration, FIFO.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::task_info::TaskRunnable as Runnable;

use super::handle::Callback;
use crate::selector::IoCallback;

/// One entry of the ready queue.
pub(crate) enum Ready {
    /// `call_soon`, a due timer, a done callback.
    Callback(Rc<dyn Callback>),
    /// A reader or writer callback whose fd is ready.
    Io(Rc<IoCallback>),
    /// A task's next step.
    Runnable(Runnable),
    /// A `call_soon_threadsafe` callback.
    Remote(Box<dyn FnOnce() + Send>),
    /// The future of `run_until_complete` was woken: poll it (it is polled in queue order,
    /// like a task's step, but lives on the caller's stack).
    Main,
}

/// The ready queue. Borrowed only to push or pop, never while a callback runs.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    q: RefCell<VecDeque<Ready>>,
}

impl ReadyQueue {
    // Always inlined (as `pop`): a call per callback or task wake-up costs ~15 instructions,
    // and whether LLVM inlines it on its own depends on codegen-unit splitting.
    #[inline(always)]
    pub(crate) fn push(&self, r: Ready) {
        self.q.borrow_mut().push_back(r);
    }

    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<Ready> {
        self.q.borrow_mut().pop_front()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.q.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.borrow().is_empty()
    }
}
