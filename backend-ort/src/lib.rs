//! ONNX Runtime backend for wgraph.
//!
//! [`OrtBackend`] implements the engine's [`Backend`] trait: it loads `.onnx`
//! files into [`OrtModel`]s, which implement [`Model`]. Nothing is linked at
//! build time: the ONNX Runtime shared library is found (or installed into
//! wgraph's cache) on first use by [`runtime::runtime`]; see [`runtime`](mod@runtime) for
//! the search order. [`doctor::doctor`] reports what was found, which
//! execution providers the library offers and which GPUs the machine has.
//!
//! Supported port dtypes are `f32`, `f64`, `f16`, `i64`, `i32`, `i16`, `i8`,
//! `u8`, `u16`, `u32` and `bool` (string, u64, bf16, complex and 8-bit-float
//! ports are refused at load); dynamic dimensions become
//! [`Dim::Sym`] (named after the ONNX `dim_param`, or `?` when unnamed). The
//! ONNX custom metadata (`metadata_props`) becomes
//! [`ModelSignature::metadata`].
//!
//! Providers: CPU by default; CUDA and TensorRT (with CUDA as its fallback
//! for nodes TensorRT does not take) when [`ModelOptions::provider`] asks.
//! When the requested provider cannot be used, `strict` loads fail with
//! [`ModelError::Provider`]; otherwise the model is loaded on the next
//! provider down (TensorRT → CUDA → CPU) and [`LoadedModel::warnings`] says
//! so.
//!
//! # Modules
//!
//! - `backend` — [`OrtBackend`] (the [`Backend`]) and [`Notices`];
//! - `model` — [`OrtModel`] and its load with provider fallback;
//! - `session` — building one ONNX Runtime session on one provider;
//! - `providers` — [`provider_available`], [`available_providers`] and the
//!   execution providers a session registers;
//! - [`tensorrt`] — TensorRT options, engine caches and shape profiles;
//! - `signature` — ONNX ports to a [`ModelSignature`], input checks;
//! - `run` — the [`Model`] implementation: plain runs and `prepare`;
//! - `convert` — session outputs to engine tensors;
//! - `binding` — IoBinding runs, [`OrtDeviceValue`] (outputs left on the
//!   GPU), fixed buffers for CUDA graphs;
//! - `advice` — load errors in plain words (opsets, missing operators);
//! - `private` — the private copy of external data ONNX Runtime maps;
//! - [`runtime`](mod@runtime) — finding or installing the ONNX Runtime library;
//! - [`doctor`](mod@doctor) — [`DoctorReport`]: what was found and what the machine has.
//!
//! ```no_run
//! use wgraph_engine::model::{Backend, ModelOptions};
//! use wgraph_engine::tensor::Tensor;
//! use wgraph_ort::OrtBackend;
//!
//! let loaded = OrtBackend::new().load("add.onnx".as_ref(), &ModelOptions::default())?;
//! let x = Tensor::from_f32(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
//! let out = loaded.model.run(&[x.clone(), x])?;
//! assert_eq!(out[0].host_f32().unwrap(), &[2.0, 4.0, 6.0, 8.0]);
//! # Ok::<(), wgraph_engine::model::ModelError>(())
//! ```
//!
//! [`Backend`]: wgraph_engine::model::Backend
//! [`Model`]: wgraph_engine::model::Model
//! [`ModelSignature`]: wgraph_engine::model::ModelSignature
//! [`ModelSignature::metadata`]: wgraph_engine::model::ModelSignature::metadata
//! [`ModelOptions::provider`]: wgraph_engine::model::ModelOptions::provider
//! [`ModelError::Provider`]: wgraph_engine::model::ModelError::Provider
//! [`LoadedModel::warnings`]: wgraph_engine::model::LoadedModel::warnings
//! [`Dim::Sym`]: wgraph_engine::types::Dim::Sym

#![warn(missing_docs)]

mod advice;
mod backend;
mod binding;
mod convert;
pub mod doctor;
mod model;
mod private;
mod providers;
mod run;
pub mod runtime;
mod session;
mod signature;
pub mod tensorrt;

pub use backend::{Notices, OrtBackend};
pub use binding::OrtDeviceValue;
pub use doctor::{DoctorReport, doctor};
pub use model::OrtModel;
pub use providers::{available_providers, provider_available};
pub use runtime::{RuntimeInfo, RuntimeSource, runtime};
