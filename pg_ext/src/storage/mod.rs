//! Data as PostgreSQL stores it: the `vector` type, jsonb passed through, the heap reader that
//! search and the flat index share, page access with shared buffer hints, and the flat index.

pub mod buffer_hints;
pub mod collection_scan;
pub mod flat;
pub mod heap;
pub mod ids;
pub mod jsonb;
pub mod pages;
pub mod vector;
