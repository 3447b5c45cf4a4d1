//! The SQL surface: each function here converts its arguments, calls the runtime and storage
//! layers, and raises any error once, at its edge (`runtime::errors::edge`).

pub mod auth;
pub mod column_rotation;
pub mod context;
pub mod documents;
pub mod encryption;
pub mod events;
pub mod master_rotation;
pub mod routes;
pub mod secrets;
pub mod tenants;
