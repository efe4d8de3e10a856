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

/// Runs a body through the parser and into a compressed batch, so the
/// linker keeps the core's hot path and the check covers its dependencies.
fn pipeline_smoke() -> bool {
    use outpost_core::{expfmt, labels::LabelSet, plan, remote_write::BatchBuilder};
    let limits = plan::Limits {
        body_bytes: 4096,
        samples: 16,
        label_count: 8,
        label_name_bytes: 64,
        label_value_bytes: 128,
    };
    let mut parser = expfmt::Parser::new(&limits);
    parser.reset(expfmt::ExpositionFormat::PrometheusText);
    let mut batch = BatchBuilder::with_bounds(16, 4096);
    let mut series = LabelSet::with_capacity(9, 1024);
    let mut sink = |s: &expfmt::Sample<'_>| {
        series.clear();
        let _ = series.push("__name__", s.name);
        for (n, v) in s.labels.iter() {
            let _ = series.push(n, v);
        }
        series.sort();
        let _ = batch.push(&series, s.value, s.timestamp_ms.unwrap_or(0));
        Ok(())
    };
    let body = b"# TYPE up gauge\nup{job=\"node\"} 1 1700000000000\n";
    if parser.handle_chunk(body, &mut sink).is_err() || parser.finish(&mut sink).is_err() {
        return false;
    }
    let mut out = alloc::vec::Vec::with_capacity(8192);
    batch.finish_into(&mut out) > 0
}

/// Exercises the plan decoder and the pipeline.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const u8) -> c_int {
    let decoded = matches!(
        outpost_core::plan::decode(b"not a plan at all, just bytes"),
        Err(outpost_core::plan::PlanError::BadMagic)
    );
    let ok = decoded && pipeline_smoke();
    let verdict = if ok {
        b"no_std check: plan decoder and pipeline ran\n".as_slice()
    } else {
        b"no_std check: unexpected result\n".as_slice()
    };
    unsafe { write(1, verdict.as_ptr() as *const c_void, verdict.len()) };
    if ok {
        0
    } else {
        1
    }
}
