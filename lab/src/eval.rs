//! (being moved here from the binary's src/eval.rs)
