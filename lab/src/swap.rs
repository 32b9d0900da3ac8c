//! (being moved here from the binary's src/swap.rs)
