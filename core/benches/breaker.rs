//! Breaker admit+release: the cost every request pays per limit.
//!
//! `cargo bench -p mesh-core --bench breaker` reports it uncontended and with 2 threads hammering
//! the same counter (the target: under 50 ns uncontended).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use mesh_core::breaker::Resource;

fn uncontended(c: &mut Criterion) {
    let r = Arc::new(Resource::new(1024));
    c.bench_function("breaker admit+release, uncontended", |b| {
        b.iter(|| {
            let p = r.try_acquire();
            std::hint::black_box(&p);
            drop(p);
        })
    });
    let full = Arc::new(Resource::new(0));
    c.bench_function("breaker refusal (limit reached)", |b| {
        b.iter(|| std::hint::black_box(full.try_acquire()))
    });
}

fn contended(c: &mut Criterion) {
    // A second thread admits and releases on the same counter for the whole measurement.
    let r = Arc::new(Resource::new(1024));
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(std::hint::black_box(r.try_acquire()));
            }
        })
    };
    c.bench_function("breaker admit+release, contended (2 threads)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                drop(std::hint::black_box(r.try_acquire()));
            }
            start.elapsed()
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = other.join();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = uncontended, contended
}
criterion_main!(benches);
