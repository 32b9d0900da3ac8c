//! Host (and, with `--features cuda` on a GPU machine, CUDA) step math over
//! the shared cases at 16× the test sizes.

use criterion::{Criterion, criterion_group, criterion_main};
use wgraph_kernels::{Host, StepMath, cases};

fn bench(c: &mut Criterion) {
    let cases = cases::all(16);
    let mut devices: Vec<Box<dyn StepMath>> = vec![Box::new(Host)];
    #[cfg(feature = "cuda")]
    if let Ok(m) = wgraph_kernels::CudaMath::new(0) {
        devices.push(Box::new(m));
    }
    for math in &mut devices {
        let device = math.device();
        for case in &cases {
            let inp = case.inputs();
            c.bench_function(&format!("{}/{device}", case.name), |b| {
                b.iter(|| case.run_with(&mut **math, &inp))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
