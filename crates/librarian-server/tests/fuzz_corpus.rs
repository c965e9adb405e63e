//! Replays the fuzz corpora (`fuzz/corpus/*`, grown by `cargo fuzz run`) as a normal test: every
//! input that once reached new code must still be handled without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;

fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn the_websocket_decoding_corpus_replays_without_a_panic() {
    let n = replay("ws_frames", librarian_server::ws::decode_untrusted);
    assert!(n > 0, "empty corpus");
}

#[test]
fn the_body_and_validation_corpus_replays_without_a_panic() {
    let n = replay("bodies", librarian_server::body::check_untrusted);
    assert!(n > 0, "empty corpus");
}
