//! Building images from Dockerfiles: the parser, the lexer of its arguments, the build context
//! and its ignore rules, COPY's placement of files, and the builder.

pub mod builder;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod fetch;
pub mod git;
pub mod ignore;
pub mod run_mount;
pub mod shell_word;
pub mod ssh_relay;
