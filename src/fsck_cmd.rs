//! `larder fsck`: runs the offline check, shows progress and the report.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use crate::cache::{fsck, FsckReport};
use crate::config::Config;
use crate::datadir::DataDir;

/// Repair passes before giving up: removing an entry can expose its parent.
const MAX_REPAIR_PASSES: usize = 3;

pub fn run(config: &Config, repair: bool, verify: bool, json: bool) -> ExitCode {
    let dir = match DataDir::open(&config.storage.data_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("larder fsck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut progress = ProgressLine::new(verify);
    let mut found: Option<FsckReport> = None;
    let mut repairs = Vec::new();
    let passes = if repair { MAX_REPAIR_PASSES } else { 1 };
    for pass in 0..passes {
        let report = match fsck(&dir, repair, verify && pass == 0, &mut |d, t| {
            progress.update(d, t)
        }) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("larder fsck: {e}");
                return ExitCode::FAILURE;
            }
        };
        progress.finish();
        repairs.extend(report.repairs.iter().cloned());
        let clean = report.problems.is_empty();
        found.get_or_insert(report);
        if clean {
            break;
        }
    }
    let Some(mut found) = found else {
        return ExitCode::FAILURE;
    };
    // After repairs, what remains is what a final check still finds.
    let remaining = if repair {
        match fsck(&dir, false, false, &mut |_, _| {}) {
            Ok(r) => r.problems,
            Err(e) => {
                eprintln!("larder fsck: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        found.problems.clone()
    };
    found.repairs = repairs;
    if json {
        let out = serde_json::json!({ "report": found, "remaining": remaining });
        println!("{out:#}");
    } else {
        println!(
            "checked {} blobs ({}) and {} entries in {}",
            found.blobs,
            human(found.bytes),
            found.entries,
            config.storage.data_dir.display()
        );
        for p in &found.problems {
            println!("problem: {p}");
        }
        for l in &found.leftovers {
            println!("leftover: {l}");
        }
        for r in &found.repairs {
            println!("repaired: {r}");
        }
        if !found.leftovers.is_empty() && !repair {
            println!(
                "{} leftover(s) of interrupted writes: not problems; the next start removes them",
                found.leftovers.len()
            );
        }
        match remaining.len() {
            0 if found.problems.is_empty() => println!("no problems found"),
            0 => println!("all problems repaired"),
            n => println!(
                "{n} problem(s) remain{}",
                if repair {
                    ""
                } else {
                    "; run with --repair to fix them"
                }
            ),
        }
    }
    if remaining.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A one-line progress display on stderr: bytes, rate and ETA.
struct ProgressLine {
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
}

impl ProgressLine {
    fn new(enabled: bool) -> ProgressLine {
        ProgressLine {
            enabled,
            started: Instant::now(),
            last_draw: None,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled
            || self
                .last_draw
                .is_some_and(|t| t.elapsed().as_millis() < 200)
                && done < total
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (total.saturating_sub(done)) as f64 / rate
        } else {
            0.0
        };
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        eprint!(
            "\rverifying content: {} / {} ({pct}%), {}/s, ETA {:.0}s   ",
            human(done),
            human(total),
            human(rate as u64),
            eta
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            eprintln!();
            self.enabled = false;
        }
    }
}

fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}
