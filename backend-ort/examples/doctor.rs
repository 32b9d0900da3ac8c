//! Prints what ONNX Runtime and GPUs this machine offers wgraph.
//!
//! `cargo run -p wgraph-ort --example doctor [-- --json]`

fn main() {
    let report = wgraph_ort::doctor();
    if std::env::args().any(|a| a == "--json") {
        println!("{:#}", report.to_json());
    } else {
        println!("{report}");
    }
}
