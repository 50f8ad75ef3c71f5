//! After warm-up (every key seen once, maps pre-sized with `with_capacity`), processing
//! allocates nothing. A counting global allocator records allocations made by the
//! current thread while counting is switched on, so the test harness's other threads
//! do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use roda_pipe::{dedup_by, delta, filter, map, pipe, stateful, Stage};

struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with` because the allocator may run while thread-locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System`, which upholds `GlobalAlloc`'s contract;
// the bookkeeping only touches `const`-initialised thread-locals without destructors,
// which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `alloc` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `alloc_zeroed` are passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `realloc` are passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees for `dealloc` are passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

const KEYS: u64 = 1024;
const CALLS: u64 = 100_000;

#[test]
fn the_counter_sees_allocations() {
    let n = allocations_during(|| {
        black_box(vec![1u8; 16]);
    });
    assert_eq!(n, 1);
}

#[test]
fn keyed_pipes_and_a_chain_do_not_allocate_after_warm_up() {
    let mut st = stateful(
        |x: &u64| x % KEYS,
        |x: &u64| *x,
        |s: &mut u64, x: &u64| *s = s.wrapping_add(*x),
    )
    .with_capacity(KEYS as usize);
    let mut de = delta(
        |x: &u64| x % KEYS,
        |c: u64, p: Option<u64>| p.map(|p| c.wrapping_sub(p)),
    )
    .with_capacity(KEYS as usize);
    let mut dd = dedup_by(|x: &u64| x % KEYS).with_capacity(KEYS as usize);
    let mut chain = pipe![
        map(|x: &u64| x.wrapping_mul(3)),
        filter(|x: &u64| x % 2 == 0),
        stateful(
            |x: &u64| x % KEYS,
            |_: &u64| 0u64,
            |n: &mut u64, _: &u64| *n += 1
        )
        .with_capacity(KEYS as usize),
    ];

    let mut sum = 0u64;
    // Warm-up must not allocate either: the maps were pre-sized.
    let warm = allocations_during(|| {
        for x in 0..2 * KEYS {
            st.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            de.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            dd.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            chain.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
        }
    });
    assert_eq!(warm, 0, "warm-up of pre-sized pipes allocated");

    let hot = allocations_during(|| {
        for i in 0..CALLS {
            let x = black_box(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            st.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            de.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            dd.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
            chain.process(&x, &mut |y: &u64| sum = sum.wrapping_add(*y));
        }
    });
    black_box(sum);
    assert_eq!(hot, 0, "processing allocated after warm-up");
}

#[test]
fn without_capacity_the_first_keys_do_allocate() {
    // Shows the test can fail: an unsized map grows while keys arrive.
    let mut st = stateful(|x: &u64| *x, |x: &u64| *x, |s: &mut u64, x: &u64| *s += x);
    let n = allocations_during(|| {
        for x in 0..KEYS {
            st.process(&x, &mut |y: &u64| {
                black_box(y);
            });
        }
    });
    assert!(n > 0);
}
