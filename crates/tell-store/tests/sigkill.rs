//! A real SIGKILL: a child process writes many small shards slowly, the test kills it at random
//! points (twice), resumes to the end, and compares with an uninterrupted store.
//!
//! The child is this test binary re-executed on `child_writer` with `TELL_STORE_CHILD_DIR` set.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use tell_store::*;

const N: usize = 90;
const SHARD: usize = 3;

fn child_spec() -> StoreSpec {
    spec(Positions::All, StoreDtype::F16, SHARD)
}

/// The child's body: resume (or create) and write the remaining records, one line per record.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var("TELL_STORE_CHILD_DIR") else {
        return; // only does work when re-executed by `sigkill_then_resume_matches_uninterrupted`
    };
    let mut w = StoreWriter::resume(std::path::Path::new(&dir), child_spec(), false).unwrap();
    let start = w.completed_records();
    println!("resumed at {start}");
    for i in start..N {
        push_range(&mut w, i, i + 1);
        println!("pushed {i}");
        // Slow enough that a kill lands mid-capture, fast enough to keep the test short.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    w.finish().unwrap();
    println!("finished");
}

fn spawn(dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env("TELL_STORE_CHILD_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A seed that differs per run, so kill points vary between runs (printed for reproduction).
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.as_nanos() as u64) ^ u64::from(std::process::id())
}

#[test]
fn sigkill_then_resume_matches_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (reference, killed) = (tmp.path().join("ref"), tmp.path().join("killed"));
    write_store(&reference, child_spec(), N);

    let mut rng = seed();
    println!("seed {rng}");
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut resumed_at = Vec::new();
    for round in 0..2 {
        let done = Store::open(&killed).map(|s| s.len()).unwrap_or(0);
        // Kill after a random record of this run (and after a random extra delay of 0-2999 us,
        // so the kill also lands inside shard writes and renames, not only between records).
        let target = done + 1 + (next() as usize) % ((N - done) / 2);
        let delay = next() % 3000;
        let mut child = spawn(&killed);
        // Keep the pipe open until after the kill: closing it would end the child by EPIPE.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        for line in out.by_ref().lines() {
            let line = line.unwrap();
            // libtest prints "test child_writer ... " without a newline before our first line.
            if let Some(at) = line.split("resumed at ").nth(1) {
                resumed_at.push(at.parse::<usize>().unwrap());
            }
            if line == format!("pushed {target}") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(delay));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        // The child went on writing during the delay: the last record it reported, from what it
        // printed before it died.
        let mut last = target;
        for line in out.lines().map_while(|l| l.ok()) {
            if let Some(i) = line.strip_prefix("pushed ") {
                last = last.max(i.parse::<usize>().unwrap());
            }
        }
        assert!(
            !status.success(),
            "round {round}: child finished before the kill"
        );
        println!("round {round}: killed after record {target} + {delay} us");
        // Whatever the kill left, the manifest only points at whole shards.
        let store = Store::open(&killed).unwrap();
        for p in verify(&killed).unwrap().problems {
            let ok = p.message.contains("left over") || p.message.contains("the manifest commits");
            assert!(ok, "round {round}: unexpected damage after kill: {p}");
        }
        // Records 0..=last were reported; one more may have been written but not reported.
        assert!(
            store.len() <= last + 2,
            "round {round}: {} records",
            store.len()
        );
        assert_eq!(store.len() % SHARD, 0);
    }
    let mut child = spawn(&killed);
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(child.wait().unwrap().success());
    assert!(lines.iter().any(|l| l == "finished"));
    let last = lines
        .iter()
        .find_map(|l| l.split("resumed at ").nth(1))
        .unwrap();
    resumed_at.push(last.parse().unwrap());
    println!("resumed at {resumed_at:?}");
    assert_eq!(resumed_at[0], 0);
    assert_eq!(resumed_at.len(), 3);

    // Identical records and arrays, and in fact identical files.
    let (a, b) = (
        Store::open(&reference).unwrap(),
        Store::open(&killed).unwrap(),
    );
    assert_eq!(a.records().unwrap(), b.records().unwrap());
    assert_eq!(a.offsets().unwrap(), b.offsets().unwrap());
    for key in a.keys() {
        assert_eq!(a.matrix(&key).unwrap(), b.matrix(&key).unwrap(), "{key}");
    }
    assert_same_store(&reference, &killed);
    assert!(verify(&killed).unwrap().is_ok());
}
