//! (being moved here from the binary's src/loadtest.rs)
