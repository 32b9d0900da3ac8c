//! (being moved here from the binary's src/blocks.rs)
