//! Images: an OCI image layout on disk, references, layers with whiteouts (gzip, zstd or
//! plain), and pulls from registries.

pub mod archive;
pub mod gzip;
pub mod layer;
pub mod oci;
pub mod reference;
pub mod remote;
pub mod store;
pub mod zstd;

pub use reference::Reference;
pub use store::{Image, ImageError, ImageStore};
