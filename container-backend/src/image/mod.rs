//! Images: an OCI image layout on disk, references, layers with whiteouts.

pub mod layer;
pub mod oci;
pub mod reference;
pub mod store;

pub use reference::Reference;
pub use store::{Image, ImageError, ImageStore};
