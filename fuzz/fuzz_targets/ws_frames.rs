//! WebSocket input: raw wire bytes through the frame codec, and text frames through the parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    librarian_server::ws::decode_untrusted(data);
});
