//! `tell run` through the binary: bad input exits non-zero with the file named and no panic.
//! (The full chain is tested as a library in crates/tell-run/tests/run.rs.)

use std::process::Command;

#[test]
fn run_names_a_missing_suite_and_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let suite = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/tell-run/tests/data/mini/suite.toml"
    );
    for (suite, model, want) in [
        (
            "no-such-suite.toml",
            suite,
            "error: suite no-such-suite.toml does not exist",
        ),
        (
            suite,
            "no-such-model.gguf",
            "error: model no-such-model.gguf does not exist",
        ),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_tell"))
            .args(["run", suite, "--model", model, "--out"])
            .arg(&out)
            .output()
            .expect("run tell");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!out.exists());
}
