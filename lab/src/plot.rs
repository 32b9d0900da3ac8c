//! (being moved here from the binary's src/plot.rs)
