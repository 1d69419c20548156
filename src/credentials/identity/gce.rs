//! The gce identity: to be written (issue 14).
