//! SQLite's memory, on the process allocator (mimalloc). Without this, the
//! bundled SQLite allocates with glibc's malloc, whose per-thread arenas grow
//! and shrink with each statement run on a blocking thread (`sysmalloc`,
//! `mprotect`, pages faulted in zeroed): a sixth of the server's time in a
//! point-query benchmark. This module owns only that setting; it must run
//! before SQLite initialises, so `Database::open` calls it first.

use std::ffi::{c_int, c_void};
use std::sync::Once;

use rusqlite::ffi;

unsafe extern "C" fn allocate(bytes: c_int) -> *mut c_void {
    // SAFETY: mi_malloc takes any size and returns null on failure, which
    // SQLite handles as out of memory.
    unsafe { libmimalloc_sys::mi_malloc(bytes.max(0) as usize) }
}

unsafe extern "C" fn free(block: *mut c_void) {
    // SAFETY: SQLite frees only what `allocate`/`reallocate` returned.
    unsafe { libmimalloc_sys::mi_free(block) }
}

unsafe extern "C" fn reallocate(block: *mut c_void, bytes: c_int) -> *mut c_void {
    // SAFETY: as for `free`; SQLite never passes a size below 1.
    unsafe { libmimalloc_sys::mi_realloc(block, bytes.max(0) as usize) }
}

unsafe extern "C" fn size(block: *mut c_void) -> c_int {
    // SAFETY: as for `free`. SQLite allocations are below 2 GiB.
    unsafe { libmimalloc_sys::mi_usable_size(block) as c_int }
}

unsafe extern "C" fn round_up(bytes: c_int) -> c_int {
    (bytes + 7) & !7
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

/// Point SQLite at mimalloc, once per process. If SQLite was initialised
/// already (another library in the process used it first) the call is
/// refused and SQLite keeps its own allocator, which is only slower.
pub(super) fn use_process_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(allocate),
            xFree: Some(free),
            xRealloc: Some(reallocate),
            xSize: Some(size),
            xRoundup: Some(round_up),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to the methods, which
        // SQLite copies; it is refused (SQLITE_MISUSE) once SQLite runs.
        unsafe {
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const _);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_allocates_from_mimalloc() {
        // nextest runs each test in its own process: SQLite is not yet
        // initialised here, as in `Database::open`.
        use_process_allocator();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a); INSERT INTO t VALUES (randomblob(1000))")
            .unwrap();
        // SAFETY: a block from SQLite's allocator, freed by it.
        unsafe {
            let block = ffi::sqlite3_malloc(100);
            assert!(!block.is_null());
            assert!(libmimalloc_sys::mi_is_in_heap_region(block));
            assert!(ffi::sqlite3_msize(block) >= 100);
            ffi::sqlite3_free(block);
        }
    }
}
