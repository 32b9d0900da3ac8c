//! Sources: what enters a world each tick — tensors from files, constants
//! and noise, the player's keys (scripted or live) and what they become as
//! model conditions, text prompts, and the toy and ground-truth worlds.
//!
//! | file | kinds |
//! |---|---|
//! | `npy.rs` | `npy` — a tensor, or one slice per tick, from a `.npy` file |
//! | `image_file.rs` | `image` — a PNG/JPEG/GIF as an image tensor |
//! | `constant.rs` | `constant` — a tensor of one value |
//! | `noise.rs` | `noise` — reproducible Gaussian noise |
//! | `actions.rs` | `actions` — the keys held: live, or scripted by an action file |
//! | `keys.rs` | `keys` — actions as a multi-hot vector |
//! | `qcm.rs` | `qcm` — Yume's Quantized Camera Motion captions |
//! | `prompt_schedule.rs` | `prompt_schedule` — text changing at given ticks |
//! | `pan.rs` | `pan` — a toy camera scrolled by the keys |
//! | `world.rs` | `world` — the ground-truth world (crate `wgraph-groundtruth`): RGB, depth, pose |
//!
//! [`action_file`] parses action files (also used by the CLI, as
//! `wgraph_nodes::action_file`).

pub mod action_file;
pub mod actions;
pub mod constant;
pub mod image_file;
pub mod keys;
pub mod noise;
pub mod npy;
pub mod pan;
pub mod prompt_schedule;
pub mod qcm;
pub mod world;
