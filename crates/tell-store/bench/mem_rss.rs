//! Peak-RSS benchmark of the store writer: writes N records and prints VmHWM.
//!
//! `cargo run --release -p tell-store --example mem_rss -- DIR N [SHARD] [D] [LAYERS] [POSITIONS]`
//! prints one JSON line. Run it for 200 and 2000 records (bench/mem_rss.sh) with the same settings:
//! the writer holds at most one shard, so peak RSS must not grow with N.

use std::path::PathBuf;
use tell_store::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: mem_rss DIR N [SHARD=64] [D=1024] [LAYERS=8] [POSITIONS=last]";
    let dir = PathBuf::from(a.get(1).ok_or(usage)?);
    let n: usize = a.get(2).ok_or(usage)?.parse()?;
    let arg = |i: usize, default: usize| a.get(i).map_or(Ok(default), |s| s.parse());
    let (shard, d, layers) = (arg(3, 64)?, arg(4, 1024)?, arg(5, 8)? as u32);
    let positions = Positions::parse(a.get(6).map_or("last", String::as_str))?;
    let hwm = write(&dir, n, shard, d, layers, positions)?;
    println!(
        "{{\"records\": {n}, \"shard_records\": {shard}, \"d\": {d}, \"layers\": {layers}, \
         \"positions\": \"{positions}\", \"vm_hwm_kib\": {hwm}}}"
    );
    Ok(())
}

/// Writes `n` synthetic records (generated one at a time) and returns VmHWM in KiB.
fn write(
    dir: &std::path::Path,
    n: usize,
    shard: usize,
    d: usize,
    layers: u32,
    positions: Positions,
) -> Result<u64, Box<dyn std::error::Error>> {
    let model = ModelIdentity {
        name: "bench".into(),
        hash: model_hash(&[b"bench"]),
    };
    let mut spec = StoreSpec::new(
        model,
        vec![SiteSpec::block("hook_resid_post", d)],
        (0..layers).collect(),
        positions,
        StoreDtype::F32,
    );
    spec.shard_records = shard;
    let mut w = StoreWriter::create(dir, spec, true)?;
    let keys: Vec<SiteLayerKey> = w.keys().iter().map(|(k, _)| k.clone()).collect();
    let mut block = Vec::new();
    for i in 0..n {
        let toks = 16 + i % 16;
        let meta = RecordMeta {
            id: format!("r{i}"),
            query_id: format!("q{}", i / 8),
            condition: "baseline".into(),
            tier: "free".into(),
            n_tokens: toks,
            n_response_tokens: 4,
            extra: vec![("label".into(), (i % 3).to_string())],
        };
        block.clear();
        block.extend((0..toks * d).map(|j| ((i * 31 + j) % 1000) as f32 * 1e-3));
        let vals: Vec<(SiteLayerKey, &[f32])> =
            keys.iter().map(|k| (k.clone(), &block[..])).collect();
        w.push_tokens(meta, &vals)?;
    }
    w.finish()?;
    vm_hwm_kib()
}

/// Peak resident set size of this process, from /proc/self/status.
fn vm_hwm_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?)
}
