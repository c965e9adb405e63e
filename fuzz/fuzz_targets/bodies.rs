//! HTTP bodies and WS `data`: JSON parsing with field errors, and the validation rules.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    librarian_server::body::check_untrusted(data);
});
