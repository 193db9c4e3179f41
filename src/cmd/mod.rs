//! One module per subcommand: arguments and the calls they make.

pub mod forward;
pub mod inspect;
