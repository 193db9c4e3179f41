//! Bounded memory: peak RSS of writing 2,000 records is within 1.2x of writing 200 (same
//! settings). Each run is a fresh child process (this binary re-executed on `child_mem`) that
//! reports its own VmHWM. Same workload as `bench/mem_rss.rs`.

use std::process::Command;
use tell_store::*;

const D: usize = 1024;
const LAYERS: u32 = 8;
const SHARD: usize = 64;

#[test]
fn child_mem() {
    let (Ok(dir), Ok(n)) = (
        std::env::var("TELL_STORE_MEM_DIR"),
        std::env::var("TELL_STORE_MEM_N"),
    ) else {
        return; // only does work when re-executed by `peak_rss_does_not_grow_with_records`
    };
    let n: usize = n.parse().unwrap();
    let mut spec = StoreSpec::new(
        ModelIdentity {
            name: "bench".into(),
            hash: model_hash(&[b"bench"]),
        },
        vec![SiteSpec::block("hook_resid_post", D)],
        (0..LAYERS).collect(),
        Positions::Mean,
        StoreDtype::F32,
    );
    spec.shard_records = SHARD;
    let mut w = StoreWriter::create(std::path::Path::new(&dir), spec, false).unwrap();
    let keys: Vec<SiteLayerKey> = w.keys().iter().map(|(k, _)| k.clone()).collect();
    let mut block = Vec::new();
    for i in 0..n {
        let toks = 16 + i % 16;
        let meta = RecordMeta {
            id: format!("r{i}"),
            query_id: format!("q{}", i / 8),
            n_tokens: toks,
            n_response_tokens: 4,
            extra: vec![("label".into(), (i % 3).to_string())],
            ..RecordMeta::default()
        };
        block.clear();
        block.extend((0..toks * D).map(|j| ((i * 31 + j) % 1000) as f32 * 1e-3));
        let vals: Vec<(SiteLayerKey, &[f32])> =
            keys.iter().map(|k| (k.clone(), &block[..])).collect();
        w.push_tokens(meta, &vals).unwrap();
    }
    assert_eq!(w.finish().unwrap().record_count, n);
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    println!("\nVMHWM_KIB {}", hwm.split_whitespace().nth(1).unwrap());
}

fn peak_kib(dir: &std::path::Path, n: usize) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_mem", "--exact", "--nocapture", "--test-threads=1"])
        .env("TELL_STORE_MEM_DIR", dir)
        .env("TELL_STORE_MEM_N", n.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("VMHWM_KIB "))
        .unwrap_or_else(|| panic!("no VmHWM in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn peak_rss_does_not_grow_with_records() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc/self/status on this platform");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let small = peak_kib(&tmp.path().join("s"), 200);
    let large = peak_kib(&tmp.path().join("l"), 2000);
    let ratio = large as f64 / small as f64;
    println!("peak RSS: 200 records {small} KiB, 2000 records {large} KiB, ratio {ratio:.3}");
    // One shard buffer is 64 x 8 x 1024 x 4 B = 2 MiB; holding all 2,000 records would be 64 MiB.
    assert!(
        ratio <= 1.2,
        "peak RSS grew {ratio:.3}x: {small} -> {large} KiB"
    );
    let m = Manifest::load(&tmp.path().join("l")).unwrap();
    assert_eq!(m.record_count, 2000);
    assert_eq!(m.shards.len(), 2000usize.div_ceil(SHARD));
}
