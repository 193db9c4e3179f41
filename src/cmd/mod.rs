//! One module per subcommand: arguments and the calls they make.

pub mod capture;
pub mod demo;
pub mod device;
pub mod forward;
pub mod generate;
pub mod inspect;
pub mod intervene;
pub mod labels;
pub mod organism;
pub mod patch;
pub mod probe;
pub mod run;
pub mod score;
pub mod stats;
pub mod steer;
pub mod store;
pub mod suite;
pub mod tokenize;
pub mod view;
