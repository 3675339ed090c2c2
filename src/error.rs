//! [`Error`], and the thread-local last error of the C layer: an errno value and a
//! message for `dax_errormsg()`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

/// An error of daxpmem: the OS error number (the errno a C caller sees) and a message
/// (what `dax_errormsg()` returns in C).
///
/// ```
/// # fn main() {
/// let path = std::env::temp_dir().join("daxpmem-doc-error-no-such-dir/file");
/// let e = daxpmem::MapOptions::new().open(&path).unwrap_err();
/// assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
/// println!("{e}"); // names the file and what failed
/// let io: std::io::Error = e.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// # }
/// ```
// Errors of the async-signal-safe calls are made with `at` from static text: making
// and recording them never allocates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub(crate) errno: i32,
    /// The call or operation the message is about ("" when `msg` says it).
    pub(crate) ctx: &'static str,
    pub(crate) msg: Cow<'static, str>,
}

impl Error {
    /// The OS error number (`libc::EINVAL`, `libc::EBADF`, ...): always `Some`.
    ///
    /// ```
    /// # fn main() -> Result<(), daxpmem::Error> {
    /// # let path = std::env::temp_dir().join(format!("daxpmem-doc-errno-{}", std::process::id()));
    /// let m = daxpmem::MapOptions::new().create(4096).open(&path)?;
    /// let e = m.mark(0..5000).unwrap_err();
    /// assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    /// # drop(m); std::fs::remove_file(&path).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        Some(self.errno)
    }

    /// The [`std::io::ErrorKind`] of the error number.
    ///
    /// ```
    /// # fn main() {
    /// let e = daxpmem::MapOptions::new().open("/nonexistent/daxpmem").unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    /// # }
    /// ```
    pub fn kind(&self) -> std::io::ErrorKind {
        std::io::Error::from_raw_os_error(self.errno).kind()
    }

    pub(crate) fn new(errno: i32, msg: impl Into<Cow<'static, str>>) -> Self {
        Error {
            errno,
            ctx: "",
            msg: msg.into(),
        }
    }
    /// An error about `ctx` with a static message: no allocation.
    pub(crate) const fn at(errno: i32, ctx: &'static str, msg: &'static str) -> Self {
        Error {
            errno,
            ctx,
            msg: Cow::Borrowed(msg),
        }
    }
    /// EINVAL with a message.
    pub(crate) fn inval(msg: impl Into<Cow<'static, str>>) -> Self {
        Error::new(libc::EINVAL, msg)
    }
    /// The current errno, with context.
    pub(crate) fn last_os(what: impl fmt::Display) -> Self {
        let e = std::io::Error::last_os_error();
        Error::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("{what}: {e}"),
        )
    }
    pub(crate) fn from_io(what: impl fmt::Display, e: &std::io::Error) -> Self {
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

/// The [`std::io::Error`] of the same kind, with the message (`raw_os_error()` of the
/// result is None: std keeps either a number or a message).
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(e.kind(), e)
    }
}

/// The result of daxpmem's calls.
pub type Result<T> = std::result::Result<T, Error>;

const MSG_MAX: usize = 1024;

thread_local! {
    // A fixed buffer: reading the message never allocates, and the pointer handed to C
    // stays valid until this thread's next failing call.
    static LAST: RefCell<[u8; MSG_MAX]> = const { RefCell::new([0; MSG_MAX]) };
}

/// Record `e` as the error of the C function `cname` and set errno: the message begins
/// with `cname`. The core names the operation `op` neutrally ("sync", "memmove (dst)");
/// a message that begins with `op` (then ':', ' (' or its end) gets `cname` in its place,
/// any other gets `cname: ` before it (unless it begins with `cname` already). Writes
/// slices of the static names and of the message: no allocation.
pub(crate) fn set_last_c(cname: &'static str, op: &'static str, e: &Error) {
    let (first, sep, rest): (&str, &str, &str) = if e.ctx.is_empty() {
        (&e.msg, "", "")
    } else {
        (e.ctx, ": ", &e.msg)
    };
    let tail = if op.is_empty() {
        None
    } else {
        first
            .strip_prefix(op)
            .filter(|t| t.is_empty() || t.starts_with(':') || t.starts_with(" ("))
    };
    match tail {
        Some(t) => set_parts(&[cname, t, sep, rest]),
        None if first.starts_with(cname) => set_parts(&[first, sep, rest]),
        None => set_parts(&[cname, ": ", first, sep, rest]),
    }
    set_errno(e.errno);
}

/// Set this thread's last message only.
pub(crate) fn set_message(msg: &str) {
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
pub(crate) fn last_ptr() -> *const libc::c_char {
    LAST.try_with(|b| b.as_ptr() as *const libc::c_char)
        .unwrap_or(c"".as_ptr())
}

pub(crate) fn set_errno(v: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = v };
}

pub(crate) fn errno() -> i32 {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() }
}
