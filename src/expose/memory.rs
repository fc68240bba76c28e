//! How the process asks glibc's allocator to give big buffers back.
//!
//! A scrape copies buffers that grow with the inventory out of the store (the rows and the
//! label text of [`crate::expose::metrics::Exposition`]) and drops them once the body is
//! written. By default
//! glibc serves an allocation that size from the scraping thread's arena as soon as its
//! dynamic mmap threshold has risen (every freed mapping raises it to that mapping's size,
//! and loading a large config frees a few), and an arena keeps what it once held: the
//! exporter sat at its last scrape's high-water mark on every worker thread. With the
//! thresholds fixed, an allocation of [`BIG`] or more is a mapping of its own, unmapped when
//! freed, and an arena keeps at most [`BIG`] free at its top, enough for the body's
//! chunks to reuse. The price is the page faults of a fresh mapping, which
//! [`faulted_vec`] takes outside the store's lock.

/// The size from which an allocation is its own mapping, and the most an arena keeps free
/// at its top.
pub const BIG: usize = 1024 * 1024;

/// Fixes glibc's mmap and trim thresholds at [`BIG`]. Called first thing in `main`; a no-op
/// where the allocator is not glibc's.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let big = BIG as libc::c_int;
        // SAFETY: `mallopt` only sets malloc parameters; glibc takes the arena lock for it,
        // so it is sound at any time and from any thread. A rejected value (it returns 0)
        // leaves glibc's default, which is still correct, only larger.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, big);
            libc::mallopt(libc::M_TRIM_THRESHOLD, big);
        }
    }
}

/// An empty vector with room for `n` items, its pages already faulted in: filling it later,
/// under a lock, then does not stop at each new page. A fresh mapping's pages cost a fault
/// each on first touch; taken here they cost a memset more, outside whatever lock the caller
/// takes next.
pub fn faulted_vec<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    for slot in v.spare_capacity_mut() {
        *slot = std::mem::MaybeUninit::zeroed();
    }
    v
}

#[cfg(test)]
mod tests;
