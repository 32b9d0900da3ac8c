//! (being moved here from the binary's src/players.rs)
