//! Building images from Dockerfiles: the parser, the build context, and the builder.

pub mod builder;
pub mod context;
pub mod dockerfile;
