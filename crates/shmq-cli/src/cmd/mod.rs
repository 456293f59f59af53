//! One module per subcommand family.

pub(crate) mod bench;
