//! Signal dispositions: validating signal numbers, reading and restoring a signal's
//! `sigaction`, and installing tulip's actions through `signal-hook-registry`.
//!
//! Everything here that runs inside a signal handler is marked so and uses only
//! async-signal-safe calls (`sigaction`, `raise`, atomics).

use std::borrow::Cow;
use std::io;
use std::mem::MaybeUninit;

use libc::c_int;
use signal_hook_registry::SigId;

/// The largest signal number tulip accepts, plus one (the loop keeps a bit per signal in
/// two 64-bit words). Every Unix tulip builds for has fewer signals than that (Linux 64,
/// FreeBSD 128 minus the unused ones, macOS 31); the kernel refuses the gaps.
pub(crate) const SIGNAL_LIMIT: c_int = 128;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A readable name for `sig` in messages: `SIGTERM`, or `signal 40`.
pub(crate) fn name(sig: c_int) -> Cow<'static, str> {
    let known = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGWINCH => "SIGWINCH",
        _ => return Cow::Owned(format!("signal {sig}")),
    };
    Cow::Borrowed(known)
}

/// The disposition of a signal as `sigaction` reports it.
#[derive(Clone, Copy)]
pub(crate) struct Disposition(libc::sigaction);

impl Disposition {
    /// The handler address (or `SIG_DFL` / `SIG_IGN`).
    pub(crate) fn handler(&self) -> libc::sighandler_t {
        self.0.sa_sigaction
    }

    /// Whether this is the default action (`SIG_DFL`).
    pub(crate) fn is_default(&self) -> bool {
        self.handler() == libc::SIG_DFL
    }
}

impl std::fmt::Debug for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disposition")
            .field("handler", &self.handler())
            .finish_non_exhaustive()
    }
}

/// `sig`'s current disposition.
///
/// # Errors
/// `InvalidInput` if the system does not know the signal (e.g. the real-time signals
/// glibc keeps for itself).
pub(crate) fn disposition(sig: c_int) -> io::Result<Disposition> {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only queries; `old` points to writable memory of the right type.
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Err(invalid(format!("invalid signal number {sig}")));
        }
        return Err(e);
    }
    // SAFETY: `sigaction` succeeded and filled `old` (it was zeroed before, too).
    Ok(Disposition(unsafe { old.assume_init() }))
}

/// Sets `sig`'s disposition back to `d` (one read before with [`disposition`]).
pub(crate) fn set_disposition(sig: c_int, d: &Disposition) -> io::Result<()> {
    // SAFETY: `d.0` is a complete `sigaction` the kernel gave us; a null `oldact` is allowed.
    let r = unsafe { libc::sigaction(sig, &d.0, std::ptr::null_mut()) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Checks that a loop can handle `sig`: a signal number the system knows that can be
/// caught and is not a fault signal.
///
/// # Errors
/// `InvalidInput` with a message naming the problem: out of range, `SIGKILL`/`SIGSTOP`
/// (they cannot be caught), the fault signals `SIGILL`, `SIGFPE` and `SIGSEGV` (a handler
/// that returns re-runs the faulting instruction, and `signal-hook-registry` refuses them),
/// or a number the system does not know.
pub(crate) fn validate(sig: c_int) -> io::Result<()> {
    if !(1..SIGNAL_LIMIT).contains(&sig) {
        return Err(invalid(format!("invalid signal number {sig}")));
    }
    if !catchable(sig) {
        return Err(uncatchable(sig));
    }
    disposition(sig).map(drop)
}

/// Whether a loop may handle `sig` at all (see [`validate`]).
pub(crate) fn catchable(sig: c_int) -> bool {
    ![
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
    ]
    .contains(&sig)
}

/// Checks only that `sig` is a signal number the system knows (what removing a handler
/// needs: removing one for `SIGKILL` is not an error, there is just none).
///
/// # Errors
/// `InvalidInput` if it is not.
pub(crate) fn check_number(sig: c_int) -> io::Result<()> {
    if !(1..SIGNAL_LIMIT).contains(&sig) {
        return Err(invalid(format!("invalid signal number {sig}")));
    }
    disposition(sig).map(drop)
}

fn uncatchable(sig: c_int) -> io::Error {
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return invalid(format!(
            "{} cannot be caught or ignored: it cannot have a handler",
            name(sig)
        ));
    }
    invalid(format!(
        "{} is a fault signal: it cannot be handled on an event loop",
        name(sig)
    ))
}

/// Adds `action` to what runs when `sig` arrives (installing `signal-hook-registry`'s
/// handler with `SA_RESTART` the first time the process registers `sig`).
///
/// `action` runs inside the signal handler: it must only do async-signal-safe things (tulip's
/// actions set atomics and write to an eventfd or pipe, or call [`interrupt_now`]).
pub(crate) fn register(sig: c_int, action: impl Fn() + Send + Sync + 'static) -> io::Result<SigId> {
    debug_assert!(validate(sig).is_ok());
    // SAFETY: `sig` was validated (not one of signal-hook-registry's forbidden signals), and
    // every action tulip passes is async-signal-safe: it stores to atomics, writes to an
    // eventfd/pipe or triggers a kqueue event (`Notifier::notify`), or calls
    // `interrupt_now` (sigaction + raise). None allocates, locks or panics.
    unsafe { signal_hook_registry::register(sig, action) }
}

/// Removes an action added with [`register`].
pub(crate) fn unregister(id: SigId) {
    signal_hook_registry::unregister(id);
}

/// Inside a signal handler: puts `sig` back to its default action and raises it, so the
/// process dies of it once the handler returns (`sig` is blocked while its handler runs).
/// Async-signal-safe.
pub(crate) fn interrupt_now(sig: c_int) {
    // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an empty mask; sigaction and
    // raise are async-signal-safe and take valid pointers / a valid signal number.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Ends the process the way `sig` with its default action ends it (killed by `sig`, which a
/// shell reports as status 128 + `sig`): stdout is flushed, `sig` is set to `SIG_DFL`,
/// unblocked and raised. If the process is somehow still alive, it exits with 128 + `sig`.
pub(crate) fn die_of(sig: c_int) -> ! {
    use std::io::Write;
    let _ = io::stdout().flush();
    // SAFETY: as in `interrupt_now`; the sigset is initialised by sigemptyset before use.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// Whether the calling thread is the process's main thread (the one that ran `main`).
pub(crate) fn is_main_thread() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: gettid and getpid cannot fail and take no arguments.
        unsafe { libc::gettid() == libc::getpid() }
    }
    #[cfg(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "openbsd"
    ))]
    {
        // SAFETY: pthread_main_np takes no arguments and cannot fail.
        unsafe { libc::pthread_main_np() == 1 }
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "openbsd"
    )))]
    {
        std::thread::current().name() == Some("main")
    }
}
