//! The thread-local last error: an errno value and a message for `dax_errormsg()`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

/// An error from the core: the errno a C caller sees and a message. Errors of the
/// async-signal-safe calls are made with `at` from static text: making and recording
/// them never allocates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub errno: i32,
    /// The call or operation the message is about ("" when `msg` says it).
    pub ctx: &'static str,
    pub msg: Cow<'static, str>,
}

impl Error {
    pub fn new(errno: i32, msg: impl Into<Cow<'static, str>>) -> Self {
        Error {
            errno,
            ctx: "",
            msg: msg.into(),
        }
    }
    /// An error about `ctx` with a static message: no allocation.
    pub const fn at(errno: i32, ctx: &'static str, msg: &'static str) -> Self {
        Error {
            errno,
            ctx,
            msg: Cow::Borrowed(msg),
        }
    }
    /// EINVAL with a message.
    pub fn inval(msg: impl Into<Cow<'static, str>>) -> Self {
        Error::new(libc::EINVAL, msg)
    }
    /// The current errno, with context.
    pub fn last_os(what: impl fmt::Display) -> Self {
        let e = std::io::Error::last_os_error();
        Error::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
    pub fn from_io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        Error::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.ctx.is_empty() {
            write!(f, "{}: ", self.ctx)?;
        }
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

const MSG_MAX: usize = 1024;

thread_local! {
    // A fixed buffer: reading the message never allocates, and the pointer handed to C
    // stays valid until this thread's next failing call.
    static LAST: RefCell<[u8; MSG_MAX]> = const { RefCell::new([0; MSG_MAX]) };
}

/// Record `e` as this thread's last error and set errno.
pub fn set_last(e: &Error) {
    if e.ctx.is_empty() {
        set_parts(&[&e.msg]);
    } else {
        set_parts(&[e.ctx, ": ", &e.msg]);
    }
    set_errno(e.errno);
}

/// Set this thread's last message only.
pub fn set_message(msg: &str) {
    set_parts(&[msg]);
}

/// Set the message to the concatenation of `parts` (no allocation).
fn set_parts(parts: &[&str]) {
    let _ = LAST.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            let mut n = 0;
            for p in parts {
                let m = p.as_bytes();
                let k = m.len().min(MSG_MAX - 1 - n);
                b[n..n + k].copy_from_slice(&m[..k]);
                n += k;
            }
            // A message never holds a NUL of its own: cut there if it does.
            let n = b[..n].iter().position(|&c| c == 0).unwrap_or(n);
            b[n] = 0;
        }
    });
}

/// Pointer to this thread's last message (empty string if none). Valid until this
/// thread's next failing call.
pub fn last_ptr() -> *const libc::c_char {
    LAST.try_with(|b| b.as_ptr() as *const libc::c_char)
        .unwrap_or(c"".as_ptr())
}

/// The last message as a Rust string.
pub fn last_message() -> String {
    LAST.try_with(|b| {
        let b = b.borrow();
        let n = b.iter().position(|&c| c == 0).unwrap_or(0);
        String::from_utf8_lossy(&b[..n]).into_owned()
    })
    .unwrap_or_default()
}

pub fn set_errno(v: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = v };
}

pub fn errno() -> i32 {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}
