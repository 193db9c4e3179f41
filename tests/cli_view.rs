//! `tell view`: the page of a monitored organism run opens in headless Chromium without script
//! errors and shows one coloured token per monitored token (scripts/check-view.sh, which also
//! writes a screenshot under the run); a run without a monitor gets a page without colours; bad
//! input is refused. Without `chromium` (CI installs Debian's) the browser part says it skipped.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn has_chromium() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn check_view(run: &Path, tokens: usize) -> String {
    let out = Command::new(repo().join("scripts/check-view.sh"))
        .args([
            env!("CARGO_BIN_EXE_tell"),
            run.to_str().unwrap(),
            &tokens.to_string(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn the_page_of_a_monitored_run_opens_in_chromium_with_every_token_coloured() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tell_llama::Checkpoint::open(&repo().join("checkpoints/organism")).unwrap();
    let probe = tmp.path().join("probe");
    write_probe(&probe, ck.config.hidden_size, 1);
    let run = tmp.path().join("run");
    let plain = tmp.path().join("plain");
    for (out, monitor) in [(&run, true), (&plain, false)] {
        let mut args = vec![
            "run",
            "probes/organism/suite.toml",
            "--model",
            "checkpoints/organism",
            "--out",
            out.to_str().unwrap(),
            "--limit",
            "2",
            "--max-new-tokens",
            "24",
        ];
        if monitor {
            args.extend(["--monitor", probe.to_str().unwrap()]);
        }
        ok(&tell(&args));
    }
    let tokens: usize = std::fs::read_to_string(run.join("monitor.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tokens"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    let responses = std::fs::read_to_string(run.join("responses.jsonl"))
        .unwrap()
        .lines()
        .count();
    // The page itself, without a browser.
    let page = run.join("page.html");
    let said = tell(&[
        "view",
        run.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
    ]);
    ok(&said);
    let err = String::from_utf8_lossy(&said.stderr);
    assert!(
        err.contains(&format!("{responses} responses, {tokens} coloured tokens")),
        "{err}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page reaches out"
    );
    assert!(html.contains("<script id=\"data\""));
    // Bad input.
    fails_with(
        &tell(&[
            "view",
            run.to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
            "--probe",
            "nope",
        ]),
        "no probe \"nope\"",
    );
    fails_with(
        &tell(&[
            "view",
            tmp.path().to_str().unwrap(),
            "--out",
            page.to_str().unwrap(),
        ]),
        "prompts.jsonl",
    );
    if !has_chromium() {
        eprintln!("SKIP: no chromium (apt-get install chromium; CI installs it)");
        return;
    }
    let said = check_view(&run, tokens);
    assert!(said.contains(&format!("ok {tokens} tokens")), "{said}");
    assert!(run.join("view.png").is_file());
    check_view(&plain, 0);
}
