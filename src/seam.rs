//! The recording seam (feature `seam`, tests only; never in the shipped library):
//! every line address handed to a write-back instruction and every fence, in order,
//! logged per thread, so a test can prove what a call wrote back without trusting a
//! read-back (which would come from the cache).

use std::cell::RefCell;

/// One recorded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A line address handed to CLWB / CLFLUSHOPT / CLFLUSH.
    Line(usize),
    /// An SFENCE.
    Fence,
    /// A sync finished its work, still holding the mapping's sync lock, at this tick of
    /// the seam clock.
    SyncEnd(u64),
}

thread_local! {
    static LOG: RefCell<Option<Vec<Event>>> = const { RefCell::new(None) };
}

/// Start recording on this thread (clears what was there).
pub fn start() {
    LOG.with(|l| *l.borrow_mut() = Some(Vec::new()));
}

/// Stop recording on this thread and return what was recorded.
pub fn take() -> Vec<Event> {
    LOG.with(|l| l.borrow_mut().take().unwrap_or_default())
}

pub(crate) fn line(p: usize) {
    let _ = LOG.try_with(|l| {
        if let Ok(mut g) = l.try_borrow_mut() {
            if let Some(v) = g.as_mut() {
                v.push(Event::Line(p));
            }
        }
    });
}

pub(crate) fn fence() {
    let _ = LOG.try_with(|l| {
        if let Ok(mut g) = l.try_borrow_mut() {
            if let Some(v) = g.as_mut() {
                v.push(Event::Fence);
            }
        }
    });
}

use std::sync::atomic::Ordering;

static CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The seam clock: one global, strictly increasing tick per call.
pub fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

pub(crate) fn sync_end() {
    let t = tick();
    let _ = LOG.try_with(|l| {
        if let Ok(mut g) = l.try_borrow_mut() {
            if let Some(v) = g.as_mut() {
                v.push(Event::SyncEnd(t));
            }
        }
    });
}

thread_local! {
    static MSYNC_FAIL: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Make every dax_sync msync on this thread fail with `errno` (0: stop failing). Per
/// thread, so tests running in parallel never see another test's failures (a failed
/// msync is sticky: it would fail every later sync of their mappings).
pub fn fail_msync(errno: i32) {
    MSYNC_FAIL.with(|f| f.set(errno));
}

pub(crate) fn msync_failure() -> Option<i32> {
    match MSYNC_FAIL.with(|f| f.get()) {
        0 => None,
        e => Some(e),
    }
}

/// Tracking events for diagnosing a lost write in a shadow test: every page range the
/// fault handler marked and opened, and every range a collector protected and took,
/// with the seam tick at which it happened (under the fault lock). A fixed ring of
/// atomics, so the signal handler can record without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// The handler marked [start, start+len) and made it writable.
    Open { tick: u64, start: usize, len: usize },
    /// A collector protected [start, start+len) and took its bits.
    Protect { tick: u64, start: usize, len: usize },
}

const TRACK_CAP: usize = 1 << 20;
static TRACK_N: AtomicU64 = AtomicU64::new(0);
static TRACK: [[AtomicU64; 3]; TRACK_CAP] = [const { [const { AtomicU64::new(0) }; 3] }; TRACK_CAP];

use std::sync::atomic::AtomicU64;

/// Record a tracking event (async-signal-safe: atomics only). `protect` tells the kind.
pub(crate) fn track(protect: bool, start: usize, len: usize) {
    let t = tick();
    let i = TRACK_N.fetch_add(1, Ordering::SeqCst) as usize;
    if i < TRACK_CAP {
        TRACK[i][0].store(t << 1 | protect as u64, Ordering::SeqCst);
        TRACK[i][1].store(start as u64, Ordering::SeqCst);
        TRACK[i][2].store(len as u64, Ordering::SeqCst);
    }
}

/// The tracking events recorded so far (up to the ring's capacity), and clear them.
pub fn track_events() -> Vec<Track> {
    let n = (TRACK_N.swap(0, Ordering::SeqCst) as usize).min(TRACK_CAP);
    (0..n)
        .map(|i| {
            let w = TRACK[i][0].load(Ordering::SeqCst);
            let (tick, start, len) = (
                w >> 1,
                TRACK[i][1].load(Ordering::SeqCst) as usize,
                TRACK[i][2].load(Ordering::SeqCst) as usize,
            );
            if w & 1 == 1 {
                Track::Protect { tick, start, len }
            } else {
                Track::Open { tick, start, len }
            }
        })
        .collect()
}
