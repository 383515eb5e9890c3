//! loom model tests live in tests/
