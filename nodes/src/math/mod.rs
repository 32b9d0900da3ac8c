//! Tensor operations between the other nodes: elementwise maps, joins,
//! resampling, and the first-tick switch that seeds a feedback loop.
//!
//! | file | kinds |
//! |---|---|
//! | `binary.rs` | `add`, `sub`, `mul`, `lerp` — elementwise on two tensors |
//! | `unary.rs` | `scale`, `clamp` — elementwise on one tensor |
//! | `concat.rs` | `concat` — joins two tensors along an axis |
//! | `resize.rs` | `resize` — bilinear resize |
//! | `start_then.rs` | `start_then` — `start` on tick 0, then `then` |

pub mod binary;
pub mod concat;
pub mod resize;
pub mod start_then;
pub mod unary;
