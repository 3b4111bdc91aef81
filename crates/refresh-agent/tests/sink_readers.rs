//! Readers of a sink throughout 1,000 rotations: every read is one whole token file, never a torn or empty one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use refresh_agent::{Format, Sink};

#[test]
fn readers_never_see_a_partial_sink_through_a_thousand_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::new(dir.path().join("token.json"), Format::Json);
    // Contents of varied lengths, each one recognizable whole.
    let contents: Vec<String> = (0..1_000)
        .map(|n| {
            format!(
                "{{\"n\":{n},\"access_token\":\"{}\"}}",
                "x".repeat(1 + n * 37 % 4_000)
            )
        })
        .collect();
    sink.write(&contents[0]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (path, done) = (sink.path.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0_u64;
                while !done.load(Ordering::SeqCst) {
                    let text = std::fs::read_to_string(&path).expect("the sink is always there");
                    let value: serde_json::Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("a torn read ({e}): {} bytes", text.len()));
                    let n = value["n"].as_u64().unwrap() as usize;
                    let expected = "x".repeat(1 + n * 37 % 4_000);
                    assert_eq!(value["access_token"], expected.as_str());
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for text in &contents[1..] {
        sink.write(text).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 100, "the readers read throughout: {reads}");
}
