//! (being moved here from the binary's src/bench.rs)
