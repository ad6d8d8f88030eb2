//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) through the
//! fuzz targets' bodies (fuzz/targets.rs), on stable, so every input the
//! fuzzers ever kept, crashes fixed included, stays a regression test.

#[path = "../fuzz/targets.rs"]
mod targets;

#[test]
fn every_corpus_input_runs_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut total = 0;
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: empty corpus");
        for input in &inputs {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", input.display());
        }
        println!("{name}: {} inputs", inputs.len());
        total += inputs.len();
    }
    assert!(total > 0);
}
