//! (being moved here from the binary's src/quality.rs)
