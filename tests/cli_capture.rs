//! `tell capture` and `tell store` end to end through the binary: a real SIGKILL + `--resume`
//! gives the same store as an uninterrupted run, and bad input is a clear error (exit 1, no panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use tell_store::Store;

const TINY: &str = "tests/parity/models/llama3-rope"; // 3 layers, d 64, vocab 96, context 256
const OTHER: &str = "tests/parity/models/gqa";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tell(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run tell")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed run: exit code 1, no panic, and the message contains `want`.
fn fails_with(out: &Output, want: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(want), "expected {want:?} in: {err}");
}

/// `n` prompts of pseudo-random tokens (a fixed LCG), lengths 4..=40, with extra fields.
fn write_prompts(path: &Path, n: usize) {
    let mut x: u64 = 12345;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let mut text = String::new();
    for i in 0..n {
        let len = 4 + next() % 37;
        let tokens: Vec<usize> = (0..len).map(|_| next() % 96).collect();
        let line = serde_json::json!({
            "id": format!("r{i}"), "tokens": tokens, "query_id": format!("q{}", i / 2),
            "condition": "base", "tier": if i % 2 == 0 { "free" } else { "paid" }, "sample": i % 3,
        });
        text.push_str(&format!("{line}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn capture_args<'a>(prompts: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["capture", TINY, "--prompts", prompts, "--out", out];
    v.extend_from_slice(extra);
    v
}

fn record_count(dir: &Path) -> usize {
    std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["record_count"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn sigkill_then_resume_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("p.jsonl");
    let n = 1500;
    write_prompts(&prompts, n);
    let p = prompts.to_str().unwrap();
    let full = tmp.path().join("full");
    let killed = tmp.path().join("killed");
    let settings = [
        "--sites",
        "resid_post,attn_out,ln_final",
        "--positions",
        "all",
        "--batch-size",
        "4",
        "--shard-records",
        "3",
    ];
    let out = tell(&capture_args(p, full.to_str().unwrap(), &settings));
    assert!(out.status.success(), "{}", stderr(&out));

    // Kill at a random committed-record count (seeded from the clock; printed for reruns).
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize;
    let target = 1 + seed % (n / 2);
    eprintln!("killing after >= {target} committed records");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(capture_args(p, killed.to_str().unwrap(), &settings))
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if record_count(&killed) >= target {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("capture finished before the kill (target {target} of {n})");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_micros((seed % 3000) as u64));
    child.kill().unwrap(); // SIGKILL on unix
    child.wait().unwrap();
    let at_kill = record_count(&killed);
    assert!(at_kill < n, "killed too late: {at_kill}");

    let mut resume = settings.to_vec();
    resume.push("--resume");
    let out = tell(&capture_args(p, killed.to_str().unwrap(), &resume));
    assert!(out.status.success(), "{}", stderr(&out));

    let read = |d: &Path| std::fs::read_to_string(d.join("records.csv")).unwrap();
    assert_eq!(read(&killed), read(&full));
    let (a, b) = (Store::open(&full).unwrap(), Store::open(&killed).unwrap());
    assert_eq!(a.len(), n);
    assert_eq!(b.len(), n);
    assert!(b.info().complete);
    assert_eq!(a.offsets().unwrap(), b.offsets().unwrap());
    let keys = a.keys();
    assert_eq!(keys.len(), 3 * 2 + 1);
    assert_eq!(keys, b.keys());
    for key in &keys {
        let (x, y) = (a.matrix(key).unwrap(), b.matrix(key).unwrap());
        assert_eq!((x.rows, x.cols), (y.rows, y.cols));
        // Bit-identical, not merely close.
        let bits = |m: &tell_store::Matrix| m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(bits(&x) == bits(&y), "{key} differs after resume");
    }
    let out = tell(&["store", "verify", killed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn store_info_export_and_extra_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("p.jsonl");
    write_prompts(&prompts, 10);
    let acts = tmp.path().join("acts");
    let out = tell(&capture_args(
        prompts.to_str().unwrap(),
        acts.to_str().unwrap(),
        &["--layers", "0,2"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tell(&["store", "info", acts.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["records"], 10);
    assert_eq!(info["layers"], serde_json::json!([0, 2]));
    assert_eq!(info["positions"], "last");
    assert_eq!(info["extra_columns"], serde_json::json!(["sample"]));
    let csv = std::fs::read_to_string(acts.join("records.csv")).unwrap();
    assert!(csv.starts_with("record,id,query_id,condition,tier,n_tokens,n_response_tokens,sample\n0,r0,q0,base,free,"), "{csv}");
    let npy = tmp.path().join("npy");
    let out = tell(&[
        "store",
        "export",
        acts.to_str().unwrap(),
        "--format",
        "npy",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(npy.join("blocks.2.hook_resid_post.npy")).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..128]).contains("'shape': (10, 64)"));
}

#[test]
fn bad_prompt_lines_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts");
    for (body, want) in [
        (
            "{\"id\":\"a\",\"tokens\":[1,2]}\n\n{\"id\":\"b\",\"tokens\":[3]}\n",
            "p.jsonl:2: empty line",
        ),
        (
            "{\"id\":\"a\",\"tokens\":[1,2]}\n{\"id\":\"b\",\"tokens\":[3]\n",
            "p.jsonl:2: malformed JSON",
        ),
        (
            "{\"id\":\"a\",\"tokens\":[1,2,96]}\n",
            "p.jsonl:1: prompt token id 96 is outside the model's vocabulary",
        ),
        (
            "{\"id\":\"a\",\"text\":\"hello\"}\n",
            "p.jsonl:1: text needs the model's tokenizer, which cannot be loaded: no tokenizer at",
        ),
        ("", "p.jsonl: no prompts"),
        (
            "{\"id\":\"a\",\"tokens\":[1,2]}\n{\"id\":\"b\",\"tokens\":[3]}\n{\"id\":\"a\",\"tokens\":[4]}\n",
            "p.jsonl:3: id \"a\" is already the id of line 1; every prompt needs its own id, \
             since records, responses and labels are joined on it",
        ),
    ] {
        let p = tmp.path().join("p.jsonl");
        std::fs::write(&p, body).unwrap();
        let out = tell(&capture_args(
            p.to_str().unwrap(),
            acts.to_str().unwrap(),
            &[],
        ));
        fails_with(&out, want);
        assert!(
            !acts.join("manifest.json").exists(),
            "bad input must not create a store"
        );
    }
}

#[test]
fn prompt_longer_than_the_context_is_an_error_or_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.jsonl");
    let long: Vec<u32> = (0..300).map(|i| i % 96).collect();
    let text = format!(
        "{}\n{}\n",
        serde_json::json!({"id": "short", "tokens": [1, 2, 3]}),
        serde_json::json!({"id": "long", "tokens": long})
    );
    std::fs::write(&p, text).unwrap();
    let p = p.to_str().unwrap();
    let acts = tmp.path().join("acts");
    let a = acts.to_str().unwrap();
    fails_with(
        &tell(&capture_args(p, a, &[])),
        "p.jsonl:2: prompt has 300 tokens, more than the model's context of 256",
    );
    fails_with(
        &tell(&capture_args(p, a, &["--truncate", "middle"])),
        "--truncate \"middle\"",
    );
    let out = tell(&capture_args(
        p,
        a,
        &["--truncate", "left", "--positions", "all"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let store = Store::open(&acts).unwrap();
    let n: Vec<usize> = store
        .records()
        .unwrap()
        .iter()
        .map(|r| r.meta.n_tokens)
        .collect();
    assert_eq!(n, [3, 256]);
}

#[test]
fn unknown_site_and_layer_out_of_range_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.jsonl");
    write_prompts(&p, 2);
    let (p, a) = (p.to_str().unwrap(), tmp.path().join("acts"));
    let a = a.to_str().unwrap();
    for (extra, want) in [
        (
            &["--sites", "resid_post,resid"][..],
            "unknown site \"resid\"",
        ),
        (
            &["--sites", "blocks.1.hook_nope"][..],
            "unknown site \"blocks.1.hook_nope\"",
        ),
        (
            &["--layers", "0,3"][..],
            "layer 3 is out of range: the model has layers 0..=2",
        ),
        (
            &["--sites", "blocks.7.hook_resid_post"][..],
            "layer 7 is out of range",
        ),
        (&["--layers", "1-x"][..], "not a layer number"),
        (&["--positions", "first"][..], "unknown positions \"first\""),
        (&["--dtype", "f8"][..], "unknown dtype \"f8\""),
        (
            &["--batch-size", "0"][..],
            "--batch-size must be at least 1",
        ),
    ] {
        fails_with(&tell(&capture_args(p, a, extra)), want);
    }
}

#[test]
fn a_store_of_another_model_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.jsonl");
    write_prompts(&p, 4);
    let p = p.to_str().unwrap();
    let acts = tmp.path().join("acts");
    let a = acts.to_str().unwrap();
    assert!(tell(&capture_args(p, a, &[])).status.success());
    let other = |extra: &[&str]| {
        let mut v = vec!["capture", OTHER, "--prompts", p, "--out", a];
        v.extend_from_slice(extra);
        tell(&v)
    };
    fails_with(&other(&[]), "holds a store of another model");
    fails_with(&other(&["--resume"]), "holds a store of another model");
    let same_again = tell(&capture_args(p, a, &[]));
    fails_with(&same_again, "already holds an activation store");
    let out = other(&["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = Store::open(&acts).unwrap().info();
    assert!(info.model.name.ends_with("gqa"), "{}", info.model.name);
    assert_eq!(info.records, 4);
    // Resuming with other prompts than the store's is refused too.
    let q = tmp.path().join("q.jsonl");
    std::fs::write(&q, "{\"id\":\"zz\",\"tokens\":[1]}\n").unwrap();
    let out = tell(&[
        "capture",
        OTHER,
        "--prompts",
        q.to_str().unwrap(),
        "--out",
        a,
        "--resume",
    ]);
    fails_with(&out, "cannot resume: record 0 of the store has id \"r0\"");
}

#[test]
fn ctrl_c_stops_after_a_whole_shard_and_resume_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let prompts = tmp.path().join("p.jsonl");
    let n = 3000;
    write_prompts(&prompts, n);
    let (p, acts) = (prompts.to_str().unwrap(), tmp.path().join("acts"));
    let a = acts.to_str().unwrap();
    let settings = [
        "--positions",
        "mean",
        "--batch-size",
        "2",
        "--shard-records",
        "5",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_tell"))
        .args(capture_args(p, a, &settings))
        .current_dir(repo())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while record_count(&acts) < 5 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let done = record_count(&acts);
    assert!(done < n, "finished before the interrupt");
    fails_with(&out, "rerun the same command with --resume to complete it");
    let store = Store::open(&acts).unwrap();
    assert!(!store.info().complete);
    assert_eq!(store.records().unwrap().len(), done);
    let mut resume = settings.to_vec();
    resume.push("--resume");
    let out = tell(&capture_args(p, a, &resume));
    assert!(out.status.success(), "{}", stderr(&out));
    let store = Store::open(&acts).unwrap();
    assert!(store.info().complete);
    assert_eq!(store.len(), n);
}
