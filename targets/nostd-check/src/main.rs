//! Proof that outpost-core builds without `std`: see Cargo.toml.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_int, c_void};

#[link(name = "c")]
extern "C" {
    fn aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
    fn abort() -> !;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
}

struct LibcAlloc;

unsafe impl GlobalAlloc for LibcAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let align = layout.align().max(core::mem::size_of::<usize>());
        let size = layout.size().div_ceil(align) * align;
        aligned_alloc(align, size) as *mut u8
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        free(ptr as *mut c_void)
    }
}

#[global_allocator]
static ALLOC: LibcAlloc = LibcAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe { abort() }
}

/// The prebuilt `core` is compiled with unwinding tables; with `panic = "abort"`
/// nothing ever unwinds, so the personality routine is never called.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Exercises the plan decoder so the linker keeps the core's code paths.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const u8) -> c_int {
    let verdict = match outpost_core::plan::decode(b"not a plan at all, just bytes") {
        Err(outpost_core::plan::PlanError::BadMagic) => b"no_std check: plan decoder ran\n".as_slice(),
        _ => b"no_std check: unexpected decoder result\n".as_slice(),
    };
    unsafe { write(1, verdict.as_ptr() as *const c_void, verdict.len()) };
    0
}
