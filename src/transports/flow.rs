//! Write-side flow control: the water marks and the paused state, as asyncio's
//! `_FlowControlMixin`.

use std::cell::Cell;
use std::io;

/// asyncio's default high-water mark.
pub(crate) const DEFAULT_HIGH: usize = 64 * 1024;

/// Water marks and pause state.
///
/// The protocol is paused when the buffer goes strictly over `high` and resumed when it
/// drains to `low` or below. `paused` is the state the transport decided; `told` is what the
/// protocol last heard — they differ only while a delivery waits for the protocol to finish
/// the callback it is in.
#[derive(Debug)]
pub(crate) struct Flow {
    high: Cell<usize>,
    low: Cell<usize>,
    paused: Cell<bool>,
    told: Cell<bool>,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow {
            high: Cell::new(DEFAULT_HIGH),
            low: Cell::new(DEFAULT_HIGH / 4),
            paused: Cell::new(false),
            told: Cell::new(false),
        }
    }
}

impl Flow {
    /// asyncio's `set_write_buffer_limits`: a missing `high` is 64 KiB, or 4 × `low`; a
    /// missing `low` is `high / 4`.
    pub(crate) fn set_limits(&self, high: Option<usize>, low: Option<usize>) -> io::Result<()> {
        let high = high.unwrap_or_else(|| low.map_or(DEFAULT_HIGH, |l| l.saturating_mul(4)));
        let low = low.unwrap_or(high / 4);
        if high < low {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("high ({high}) must be >= low ({low})"),
            ));
        }
        self.high.set(high);
        self.low.set(low);
        Ok(())
    }

    /// `(low, high)`, as asyncio returns them.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low.get(), self.high.get())
    }

    /// After the buffer grew to `size`: whether to pause now.
    #[inline]
    pub(crate) fn check_pause(&self, size: usize) -> bool {
        if !self.paused.get() && size > self.high.get() {
            self.paused.set(true);
            return true;
        }
        false
    }

    /// After the buffer shrank to `size`: whether to resume now.
    #[inline]
    pub(crate) fn check_resume(&self, size: usize) -> bool {
        if self.paused.get() && size <= self.low.get() {
            self.paused.set(false);
            return true;
        }
        false
    }

    #[cfg(feature = "tls")] // only the TLS transport needs it
    /// The layer under the transport decided (a TLS transport follows its raw transport's
    /// `pause_writing` / `resume_writing`): whether that changed anything.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))] // only TLS has a layer under it
    pub(crate) fn force(&self, paused: bool) -> bool {
        self.paused.replace(paused) != paused
    }

    /// Whether the protocol has heard everything decided so far.
    #[inline]
    pub(crate) fn in_sync(&self) -> bool {
        self.paused.get() == self.told.get()
    }

    /// The state to tell the protocol next, if it differs from what it heard: `Some(true)`
    /// for pause, `Some(false)` for resume. Marks it told.
    pub(crate) fn next_delivery(&self) -> Option<bool> {
        let want = self.paused.get();
        if want == self.told.get() {
            return None;
        }
        self.told.set(want);
        Some(want)
    }

    /// Whether writing is paused (as decided, whether or not the protocol heard it yet).
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Undoes `next_delivery` when the protocol could not be reached.
    pub(crate) fn undeliver(&self) {
        self.told.set(!self.told.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_strictly_over_high_and_resumes_at_low() {
        let f = Flow::default();
        f.set_limits(Some(100), Some(10)).unwrap();
        assert!(!f.check_pause(100));
        assert!(f.check_pause(101));
        assert!(!f.check_pause(500));
        assert!(!f.check_resume(11));
        assert!(f.check_resume(10));
        assert_eq!(f.limits(), (10, 100));
        f.set_limits(None, Some(1000)).unwrap();
        assert_eq!(f.limits(), (1000, 4000));
        f.set_limits(Some(80), None).unwrap();
        assert_eq!(f.limits(), (20, 80));
        assert!(f.set_limits(Some(1), Some(2)).is_err());
    }
}
