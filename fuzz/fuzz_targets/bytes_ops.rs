#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmring_fuzz::bytes_ops(data));
