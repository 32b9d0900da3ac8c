//! (being moved here from the binary's src/dataset.rs)
