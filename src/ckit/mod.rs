//! grafana/ckit's layer over memberlist.

pub mod message;
