#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealstore_core::fuzzing::vector_text(data));
