//! Placeholder: filled in by the recovery benchmark work.

fn main() {}
