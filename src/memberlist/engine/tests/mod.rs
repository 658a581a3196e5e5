//! The engine's tests: rules driven one message at a time, and whole
//! clusters on a simulated network in virtual time.

mod cluster;
mod detection;
mod early_rounds;
mod faults;
mod follow_up;
mod hints;
mod late;
mod load;
mod probing;
mod refutation;
mod rules;
mod sim;
mod starvation;
mod versions;
mod warm_targets;
