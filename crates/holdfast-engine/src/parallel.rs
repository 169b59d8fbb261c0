//! Small helpers for running independent work on a few threads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Apply `f` to every item on up to `threads` threads and collect the
/// results in input order. The first error wins; remaining items are
/// skipped once an error happened.
pub fn map<T, R, E, F>(items: Vec<T>, threads: usize, f: F) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
    F: Fn(T) -> Result<R, E> + Sync,
{
    let n = items.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let threads = threads.clamp(1, n);
    let work: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let error: Mutex<Option<E>> = Mutex::new(None);
    // the caller's job (if any) is cancelled in the helpers too
    let job = crate::cancel::JobScope::current();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                job.enter(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n || error.lock().unwrap().is_some() {
                            break;
                        }
                        let item = work[i]
                            .lock()
                            .unwrap()
                            .take()
                            .expect("each item taken once");
                        match f(item) {
                            Ok(r) => *results[i].lock().unwrap() = Some(r),
                            Err(e) => {
                                let mut slot = error.lock().unwrap();
                                if slot.is_none() {
                                    *slot = Some(e);
                                }
                            }
                        }
                    }
                })
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap()
                .expect("every item produced a result")
        })
        .collect())
}

/// Number of CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_reports_errors() {
        let r: Result<Vec<u32>, ()> = super::map((0..100).collect(), 4, |x: u32| Ok(x * 2));
        assert_eq!(r.unwrap(), (0..100).map(|x| x * 2).collect::<Vec<_>>());
        let r: Result<Vec<u32>, String> = super::map((0..100).collect(), 3, |x: u32| {
            if x == 50 { Err("boom".into()) } else { Ok(x) }
        });
        assert_eq!(r.unwrap_err(), "boom");
    }
}
