#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| trustmirror::fuzz::cue(data));
