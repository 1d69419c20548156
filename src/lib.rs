//! tagstrap library.
