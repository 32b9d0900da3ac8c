//! Model-backed kinds other than the denoisers: they see a model only
//! through the engine's `Model` trait, take their ports from its signature
//! and check wired types with `Bindings::unify`.
//!
//! | file | kinds |
//! |---|---|
//! | `model.rs` | `encoder`, `decoder`, `model` — a model run on wired inputs |
//! | `text_encoder.rs` | `text_encoder` — text → embeddings, tokenizer from the model |
//! | `action_embedder.rs` | `action_embedder` — keys → an action token |
//!
//! [`io`] is the code every model-backed kind shares (the denoisers in
//! `denoiser/` too): role checks, port type checks, running and batching.

pub mod action_embedder;
pub mod io;
pub mod model;
pub mod text_encoder;
