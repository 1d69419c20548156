//! The azure identity: to be written (issue 14).
