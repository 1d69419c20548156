//! Placeholder: filled in by the fleet benchmark work.

fn main() {}
