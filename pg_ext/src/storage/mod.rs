//! Data as PostgreSQL stores it: the `vector` type, jsonb passed through, the heap reader that
//! search and the flat index share, page access with shared buffer hints, the flat index and the hnsw index.

pub mod buffer_hints;
pub mod collection_scan;
pub mod flat;
pub mod heap;
pub mod hnsw;
pub mod ids;
pub mod index_am;
pub mod jsonb;
pub mod pages;
pub mod vector;
