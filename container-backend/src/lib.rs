//! The Berth container engine, driven by berthd: an OCI image store, a Dockerfile builder and a
//! runtime on namespaces and cgroups.
//!
//! - [`image`]: the image store (OCI layout), references, layers and whiteouts.
//! - [`runtime`]: containers as processes in namespaces on an overlay, limited by cgroups.

pub mod build;
pub mod image;
pub mod runtime;
