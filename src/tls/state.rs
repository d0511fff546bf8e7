//! The TLS layer's two state machines, as asyncio 3.11's `sslproto`: the TLS session's
//! ([`TlsState`], `SSLProtocolState`) and the application protocol's ([`AppState`],
//! `AppProtocolState`). Transitions are checked: a move the machine does not allow is a bug,
//! reported instead of silently taken.

use std::fmt;

/// The TLS session (asyncio's `SSLProtocolState`).
///
/// `Unwrapped → DoHandshake → Wrapped → Flushing → Shutdown`, and back to `Unwrapped` from
/// anywhere when the connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsState {
    /// No TLS on the connection (not started yet, or over).
    Unwrapped,
    /// The handshake is running.
    DoHandshake,
    /// Application data flows.
    Wrapped,
    /// `close()` was called: what the application wrote is being sent.
    Flushing,
    /// Our `close_notify` went out; waiting for the peer's (or the shutdown timeout).
    Shutdown,
}

/// The application protocol's calls (asyncio's `AppProtocolState`):
/// `Init -connection_made-> ConMade [-eof_received-> Eof] -connection_lost-> ConLost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppState {
    /// Nothing delivered yet.
    Init,
    /// `connection_made` was delivered (or, for `start_tls`, had been before).
    ConMade,
    /// `eof_received` was delivered.
    Eof,
    /// `connection_lost` was delivered.
    ConLost,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadTransition {
    from: &'static str,
    to: &'static str,
}

impl fmt::Display for BadTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot switch TLS state from {} to {}",
            self.from, self.to
        )
    }
}

impl TlsState {
    fn name(self) -> &'static str {
        match self {
            TlsState::Unwrapped => "UNWRAPPED",
            TlsState::DoHandshake => "DO_HANDSHAKE",
            TlsState::Wrapped => "WRAPPED",
            TlsState::Flushing => "FLUSHING",
            TlsState::Shutdown => "SHUTDOWN",
        }
    }

    /// asyncio's `_set_state` rule.
    pub(crate) fn to(self, next: TlsState) -> Result<TlsState, BadTransition> {
        use TlsState::*;
        let allowed = matches!(
            (self, next),
            (_, Unwrapped)
                | (Unwrapped, DoHandshake)
                | (DoHandshake, Wrapped)
                | (Wrapped, Flushing)
                | (Flushing, Shutdown)
        );
        if allowed {
            Ok(next)
        } else {
            Err(BadTransition {
                from: self.name(),
                to: next.name(),
            })
        }
    }
}

impl AppState {
    fn name(self) -> &'static str {
        match self {
            AppState::Init => "STATE_INIT",
            AppState::ConMade => "STATE_CON_MADE",
            AppState::Eof => "STATE_EOF",
            AppState::ConLost => "STATE_CON_LOST",
        }
    }

    /// `CM [DR*] [ER?] CL`: the order a protocol hears its calls in.
    pub(crate) fn to(self, next: AppState) -> Result<AppState, BadTransition> {
        use AppState::*;
        let allowed = matches!(
            (self, next),
            (Init, ConMade) | (ConMade, Eof) | (ConMade | Eof, ConLost)
        );
        if allowed {
            Ok(next)
        } else {
            Err(BadTransition {
                from: self.name(),
                to: next.name(),
            })
        }
    }

    /// Whether data may still be delivered (`data_received` after `connection_made`, before
    /// EOF).
    pub(crate) fn receives(self) -> bool {
        self == AppState::ConMade
    }
}

/// Moves `cell` to `next` if the machine allows it; a refused move is a tulip bug: logged
/// (and a panic in debug builds), the state left as it was. Returns whether it moved.
pub(crate) fn set_tls(cell: &std::cell::Cell<TlsState>, next: TlsState) -> bool {
    apply(cell, |s| s.to(next))
}

/// [`set_tls`] for the application state.
pub(crate) fn set_app(cell: &std::cell::Cell<AppState>, next: AppState) -> bool {
    apply(cell, |s| s.to(next))
}

fn apply<S: Copy>(
    cell: &std::cell::Cell<S>,
    f: impl FnOnce(S) -> Result<S, BadTransition>,
) -> bool {
    match f(cell.get()) {
        Ok(s) => {
            cell.set(s);
            true
        }
        Err(e) => {
            log::error!("{e}");
            debug_assert!(false, "{e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_state_follows_sslproto() {
        use TlsState::*;
        let mut s = Unwrapped;
        for next in [DoHandshake, Wrapped, Flushing, Shutdown, Unwrapped] {
            s = s.to(next).unwrap();
        }
        assert_eq!(s, Unwrapped);
        // Anything may end.
        for from in [DoHandshake, Wrapped, Flushing, Shutdown] {
            assert_eq!(from.to(Unwrapped), Ok(Unwrapped));
        }
        // No skipping, no going back.
        assert!(Unwrapped.to(Wrapped).is_err());
        assert!(DoHandshake.to(Flushing).is_err());
        assert!(Wrapped.to(DoHandshake).is_err());
        assert!(Wrapped.to(Shutdown).is_err());
        assert!(Shutdown.to(Wrapped).is_err());
        assert!(Flushing.to(Flushing).is_err());
        assert_eq!(
            Wrapped.to(DoHandshake).unwrap_err().to_string(),
            "cannot switch TLS state from WRAPPED to DO_HANDSHAKE"
        );
    }

    #[test]
    fn app_state_is_cm_er_cl() {
        use AppState::*;
        assert_eq!(Init.to(ConMade), Ok(ConMade));
        assert_eq!(ConMade.to(Eof), Ok(Eof));
        assert_eq!(Eof.to(ConLost), Ok(ConLost));
        assert_eq!(ConMade.to(ConLost), Ok(ConLost));
        assert!(Init.to(Eof).is_err());
        assert!(Init.to(ConLost).is_err());
        assert!(ConMade.to(ConMade).is_err());
        assert!(Eof.to(ConMade).is_err());
        assert!(ConLost.to(ConLost).is_err());
        assert!(ConLost.to(ConMade).is_err());
        assert!(ConMade.receives());
        assert!(!Eof.receives() && !Init.receives() && !ConLost.receives());
    }

    #[test]
    fn a_refused_move_leaves_the_state() {
        let c = std::cell::Cell::new(TlsState::Wrapped);
        assert!(set_tls(&c, TlsState::Flushing));
        assert_eq!(c.get(), TlsState::Flushing);
        let a = std::cell::Cell::new(AppState::Init);
        assert!(set_app(&a, AppState::ConMade));
        assert_eq!(a.get(), AppState::ConMade);
    }
}
