//! The order every profile's operations run in, shared by the OCI, HTTP
//! and REAPI mixes: each operation on every target back to back (rather
//! than one target's whole run, then the other's), so a burst of load from
//! a neighbour on this shared machine skews both sides alike; with
//! --repeat, each measured operation runs that often and each side's
//! median repetition is reported.

use std::sync::Arc;

use crate::args::Args;
use crate::client::Target;
use crate::driver::Measured;
use crate::profiler;
use crate::report::{Op, Row};
use crate::workload::Profile;

/// Runs `ops` of profile `p` in order. `run(op, rep, target)` performs one
/// repetition of `op` on `target` and returns what it measured under the
/// names the row reports (the target's, or more than one when a target is
/// measured two ways, as REAPI beside HTTP).
pub async fn run(
    p: &Profile,
    ops: &[Op],
    targets: &[Arc<Target>],
    args: &Args,
    run: impl AsyncFn(Op, usize, Arc<Target>) -> anyhow::Result<Vec<(String, Measured)>>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (k, &op) in ops.iter().enumerate() {
        let measured = args.wants_op(op.key());
        // A skipped operation still runs once, unreported, if a later one
        // needs what it stores.
        let setup = !measured && ops.iter().any(|o| o.needs(op) && args.wants_op(o.key()));
        if !measured && !setup {
            continue;
        }
        let reps = if measured { args.repeat.max(1) } else { 1 };
        let mut results: Vec<(String, Vec<Measured>)> = Vec::new();
        for rep in 0..reps {
            // Rotate who goes first: on a busy machine the first to run after
            // a pause fares differently, and that must not favour one side.
            let order = targets.iter().cycle().skip(k + rep).take(targets.len());
            for t in order {
                let phase = format!("{}-{}", p.key, op.key());
                let profiling = measured
                    .then(|| profiler::attach(args, &t.name, t.pid, &phase, op.key()))
                    .flatten();
                let got = run(op, rep, t.clone()).await?;
                drop(profiling);
                for (name, m) in got {
                    match results.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, reps)) => reps.push(m),
                        None => results.push((name, vec![m])),
                    }
                }
            }
        }
        if measured {
            let mut row = Row::new(p, op);
            // In the targets' order, whoever ran first in a repetition.
            for t in targets {
                for (name, reps) in results.iter_mut() {
                    let ours = *name == t.name || name.starts_with(&format!("{} ", t.name));
                    if ours && !reps.is_empty() {
                        row.push_median(name, std::mem::take(reps));
                    }
                }
            }
            rows.push(row);
        }
    }
    Ok(rows)
}
