//! Berth API.
