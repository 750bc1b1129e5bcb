//! The window's parts that need no window: its command line ([`args`]) and identity
//! ([`identity`]), shared with the packaging tools that write its man page and completions.

pub mod args;
pub mod identity;
