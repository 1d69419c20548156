//! The aws identity: to be written (issue 14).
