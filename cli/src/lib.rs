//! berthctl's command line as a library: [`args`] is what the binary parses, and what the
//! packaging tools write its man pages and shell completions from.

pub mod args;
