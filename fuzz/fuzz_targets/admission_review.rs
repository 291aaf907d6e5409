#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustmirror::fuzz::admission_review(data));
