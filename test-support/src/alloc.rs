//! A counting global allocator, for the tests that prove a steady state
//! allocates nothing or stays within a memory bound. Rust wants the global
//! allocator declared in each test binary, so each such test file says
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//! ```
//!
//! Everything is counted per thread: the test's own thread, not the
//! harness's nor a server thread's, and tests of one file may run side by
//! side. With `OUTPOST_ALLOC_TRACE` set, every allocation [`count_allocations`]
//! counts prints its backtrace, to find where it comes from.

// A global allocator is an `unsafe impl`; this is the crate's only unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

/// Passes every call to the system allocator and keeps count on the way.
pub struct CountingAllocator;

/// Set by the first allocation through [`CountingAllocator`], which comes
/// before `main`: a test that forgot to install it must not pass on zeros.
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, PartialEq)]
enum Stacks {
    Ignore,
    Print,
    Keep,
}

// Const-initialised cells without destructors: reading them never allocates
// and works while a thread exits.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static STACKS: Cell<Stacks> = const { Cell::new(Stacks::Ignore) };
    /// Set while a backtrace is taken, which allocates itself.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

thread_local! {
    static KEPT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn note(bytes: i64, allocation: bool) {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    if !allocation || !COUNTING.try_with(Cell::get).unwrap_or(false) || IN_TRACE.with(Cell::get) {
        return;
    }
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
    let stacks = STACKS.with(Cell::get);
    if stacks != Stacks::Ignore {
        IN_TRACE.with(|t| t.set(true));
        let stack = std::backtrace::Backtrace::force_capture().to_string();
        match stacks {
            Stacks::Print => eprintln!("counted allocation:\n{stack}"),
            _ => KEPT.with_borrow_mut(|kept| kept.push(stack)),
        }
        IN_TRACE.with(|t| t.set(false));
    }
}

// SAFETY: every call goes to the system allocator with the caller's own
// arguments. The bookkeeping beside it reads and writes thread-locals; it
// allocates only to keep a backtrace, under `IN_TRACE`, which stops those
// allocations from being counted (and traced) again.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, true);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), false);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn counted<T>(stacks: Stacks, f: impl FnOnce() -> T) -> (T, u64) {
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "CountingAllocator is not this test binary's #[global_allocator]"
    );
    let before = ALLOCATIONS.with(Cell::get);
    STACKS.with(|s| s.set(stacks));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    STACKS.with(|s| s.set(Stacks::Ignore));
    (out, ALLOCATIONS.with(Cell::get) - before)
}

/// What `f` gives and the allocations and reallocations made on this
/// thread while it ran.
pub fn count_allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let trace = std::env::var_os("OUTPOST_ALLOC_TRACE").is_some();
    counted(if trace { Stacks::Print } else { Stacks::Ignore }, f)
}

/// What `f` gives, the allocations made on this thread while it ran, and the
/// symbolised stack of each as it was kept: where a steady state allocates,
/// for the failure message.
pub fn allocation_stacks<T>(f: impl FnOnce() -> T) -> (T, u64, Vec<String>) {
    let first = KEPT.with_borrow(Vec::len);
    let (out, allocations) = counted(Stacks::Keep, f);
    let stacks = KEPT.with_borrow_mut(|kept| kept.split_off(first));
    (out, allocations, stacks)
}

/// Starts this thread's heap byte count over at zero, with its peak.
pub fn reset_heap_bytes() {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
}

/// Bytes allocated and not freed on this thread since [`reset_heap_bytes`]
/// (negative when more was freed than allocated since).
pub fn live_heap_bytes() -> i64 {
    LIVE.with(Cell::get)
}

/// The most [`live_heap_bytes`] has been since [`reset_heap_bytes`].
pub fn peak_heap_bytes() -> i64 {
    PEAK.with(Cell::get)
}
