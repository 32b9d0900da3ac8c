//! (being moved here from the binary's src/pybaseline.rs)
