//! The timer heap: (deadline, sequence) order, lazy cancellation, asyncio's compaction rule.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::Instant;

use super::handle::{CANCELLED, Callback, IN_HEAP};

/// Below this many timers the heap is never compacted (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES`).
const MIN_SCHEDULED_FOR_COMPACTION: usize = 100;

struct Entry {
    when: Instant,
    seq: u64,
    cb: Rc<dyn Callback>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.when == other.when && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest (deadline, seq) on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}

/// Scheduled timers. Cancelled entries stay until they reach the top or until more than
/// half of the heap is cancelled, then the heap is rebuilt without them.
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// How many entries in `heap` are cancelled; shared with every `TimerHandle`.
    cancelled: Rc<Cell<usize>>,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap {
            heap: BinaryHeap::new(),
            seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    /// The counter a `TimerHandle` bumps when it cancels a timer that is in the heap.
    pub(crate) fn cancelled_counter(&self) -> &Rc<Cell<usize>> {
        &self.cancelled
    }

    pub(crate) fn push(&mut self, when: Instant, cb: Rc<dyn Callback>) {
        let st = cb.state();
        st.set(st.get() | IN_HEAP);
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            cb,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops cancelled timers: all of them if they are more than half of a big heap, else
    /// those at the top. Returns the earliest live deadline.
    #[inline]
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        let n = self.heap.len();
        if n == 0 {
            return None;
        }
        let cancelled = self.cancelled.get();
        if n > MIN_SCHEDULED_FOR_COMPACTION && cancelled * 2 > n {
            let old = std::mem::take(&mut self.heap);
            let mut live = old.into_vec();
            live.retain(|e| {
                let keep = e.cb.state().get() & CANCELLED == 0;
                if !keep {
                    e.cb.state().set(e.cb.state().get() & !IN_HEAP);
                }
                keep
            });
            self.heap = BinaryHeap::from(live);
            self.cancelled.set(0);
        } else {
            while let Some(top) = self.heap.peek() {
                if top.cb.state().get() & CANCELLED == 0 {
                    break;
                }
                self.pop_cancelled();
            }
        }
        self.heap.peek().map(|e| e.when)
    }

    fn pop_cancelled(&mut self) {
        if let Some(e) = self.heap.pop() {
            e.cb.state().set(e.cb.state().get() & !IN_HEAP);
            self.cancelled.set(self.cancelled.get().saturating_sub(1));
        }
    }

    /// Pops every timer due at or before `now`, in (deadline, sequence) order, into `out`.
    pub(crate) fn pop_due(&mut self, now: Instant, mut out: impl FnMut(Rc<dyn Callback>)) {
        while let Some(top) = self.heap.peek() {
            if top.when > now {
                break;
            }
            let Some(e) = self.heap.pop() else { break };
            let st = e.cb.state();
            st.set(st.get() & !IN_HEAP);
            if st.get() & CANCELLED != 0 {
                self.cancelled.set(self.cancelled.get().saturating_sub(1));
                continue;
            }
            out(e.cb);
        }
    }

    /// Removes every timer (loop close).
    pub(crate) fn clear(&mut self) -> Vec<Rc<dyn Callback>> {
        self.cancelled.set(0);
        self.heap.drain().map(|e| e.cb).collect()
    }
}

impl TimerHeap {
    /// How many live (not cancelled) timers there are, and the earliest `first` of them with
    /// the type names of their callbacks (`EventLoop::dump`). Walks the whole heap: for
    /// debugging, not for the loop's own use.
    pub(crate) fn pending(&self, first: usize) -> (usize, Vec<(Instant, &'static str)>) {
        let mut live: Vec<&Entry> = self
            .heap
            .iter()
            .filter(|e| e.cb.state().get() & CANCELLED == 0)
            .collect();
        let n = live.len();
        live.sort_by_key(|e| (e.when, e.seq));
        let next = live
            .iter()
            .take(first)
            .map(|e| (e.when, e.cb.type_name()))
            .collect();
        (n, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::handle::{FnCallback, cancel};
    use std::cell::RefCell;
    use std::time::Duration;

    fn recorder(log: &Rc<RefCell<Vec<u32>>>, n: u32) -> Rc<dyn Callback> {
        let log = log.clone();
        FnCallback::new_rc(move || log.borrow_mut().push(n))
    }

    #[test]
    fn due_in_deadline_order_ties_in_push_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = TimerHeap::new();
        let t0 = Instant::now();
        h.push(t0 + Duration::from_millis(2), recorder(&log, 3));
        h.push(t0 + Duration::from_millis(1), recorder(&log, 1));
        h.push(t0 + Duration::from_millis(1), recorder(&log, 2));
        h.push(t0 + Duration::from_millis(9), recorder(&log, 9));
        h.pop_due(t0 + Duration::from_millis(5), |cb| cb.run());
        assert_eq!(*log.borrow(), vec![1, 2, 3]);
        assert_eq!(h.next_deadline(), Some(t0 + Duration::from_millis(9)));
    }

    #[test]
    fn compacts_when_more_than_half_cancelled() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut h = TimerHeap::new();
        let t0 = Instant::now();
        let mut cbs = Vec::new();
        for i in 0..1000 {
            let cb = recorder(&log, i);
            h.push(t0 + Duration::from_millis(u64::from(i)), cb.clone());
            cbs.push(cb);
        }
        for cb in cbs.iter().skip(1).take(600) {
            assert!(cancel(&**cb));
            h.cancelled.set(h.cancelled.get() + 1);
        }
        assert_eq!(h.next_deadline(), Some(t0));
        assert_eq!(h.len(), 400);
        assert_eq!(h.cancelled.get(), 0);
    }
}
