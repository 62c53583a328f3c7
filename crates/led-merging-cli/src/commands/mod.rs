//! One module per `led` subcommand, each with its `Args` and `run`.

pub mod analyze;
pub mod demo;
pub mod inspect;
pub mod locate;
pub mod merge;
mod plot;
pub mod scores;
#[cfg(feature = "attribution")]
pub mod trained_demo;
