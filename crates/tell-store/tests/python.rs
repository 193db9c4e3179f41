//! notebooks/load_store.py reads a store (safetensors + numpy) and its .npy export with exactly
//! the values Rust reads. Skipped, with a message, when python3, numpy or safetensors is missing.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use tell_store::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../notebooks/load_store.py")
}

fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy, safetensors"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn python_example_loads_store_and_export_exactly() {
    if !python_ready() {
        eprintln!("SKIPPED: python3 with numpy and safetensors is not available");
        return;
    }
    for (positions, dtype) in [
        (Positions::All, StoreDtype::F16),
        (Positions::Last, StoreDtype::Bf16),
        (Positions::ResponseMean, StoreDtype::F32),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (acts, npy, dump) = (
            tmp.path().join("acts"),
            tmp.path().join("npy"),
            tmp.path().join("dump"),
        );
        write_store(&acts, spec(positions, dtype, 5), 17);
        export_npy(&acts, &npy).unwrap();
        let out = Command::new("python3")
            .arg(script())
            .arg(&acts)
            .arg(&npy)
            .arg(format!("--dump={}", dump.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("17 records"), "{stdout}");
        assert!(stdout.contains("export matches the store"), "{stdout}");

        let store = Store::open(&acts).unwrap();
        for key in store.keys() {
            let m = store.matrix(&key).unwrap();
            let name = key.tensor_name();
            for tag in ["store", "npy"] {
                let got = std::fs::read(dump.join(format!("{name}.{tag}.bin"))).unwrap();
                assert!(
                    got == f32_bytes(&m.data),
                    "{positions} {dtype} {name} via {tag}"
                );
                let shape =
                    std::fs::read_to_string(dump.join(format!("{name}.{tag}.shape"))).unwrap();
                assert_eq!(shape, format!("{},{}", m.rows, m.cols));
            }
        }
        let offsets_file = dump.join("offsets.store.bin");
        assert_eq!(offsets_file.exists(), positions == Positions::All);
        if positions == Positions::All {
            let want: Vec<u8> = store
                .offsets()
                .unwrap()
                .iter()
                .flat_map(|o| (*o as i64).to_le_bytes())
                .collect();
            assert_eq!(std::fs::read(offsets_file).unwrap(), want);
        }
        let recs: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&std::fs::read(dump.join("records.store.json")).unwrap())
                .unwrap();
        assert_eq!(recs.len(), 17);
        for (i, r) in recs.iter().enumerate() {
            let m = meta(i);
            assert_eq!(r["id"], m.id.as_str());
            assert_eq!(r["query_id"], m.query_id.as_str());
            assert_eq!(r["n_tokens"], m.n_tokens.to_string().as_str());
            assert_eq!(r["note"], m.extra("note").unwrap());
            assert_eq!(r["late_field"], m.extra("late_field").unwrap_or(""));
        }
    }
}
