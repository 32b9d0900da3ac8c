//! Compiles Triton's vendored `proto/grpc_service.proto` (and the
//! `model_config.proto` it imports) into Rust with protox (a protobuf
//! compiler in Rust: no `protoc` on the machine) and tonic-prost-build
//! (client only).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/grpc_service.proto");
    println!("cargo:rerun-if-changed=proto/model_config.proto");
    let descriptors = protox::compile(["grpc_service.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
