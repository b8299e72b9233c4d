//! Workspace root package. It holds no code: it exists so that cargo-insta
//! finds the pending snapshots in the top-level `snapshots/` folder.
