//! `cargo xtask rig demo`: the README's main job, as a list of steps run in dom0
//! in **one boot**. Add a step by adding a line to [`STEPS`] (its command runs
//! under bash in dom0 with the test programs and the selftest script in
//! `/rig/files`); every step runs, and the demo fails if any step failed.

use std::fmt::Write as _;

use super::programs::{self, is_runner_line};
use super::vm::{BootOptions, Failure, Mode, Payload, Shipped};
use super::{Rig, SELFTEST};

/// One demo step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// What the step shows.
    pub title: &'static str,
    /// bash command line run in dom0.
    pub command: &'static str,
}

/// The demo, in order.
pub const STEPS: &[Step] = &[
    Step {
        title: "Linux's own blkfront and netfront move data through dom0's blkback and netback (rig selftest)",
        command: "bash /rig/files/selftest.sh",
    },
    Step {
        title: "the project's rig test suites against real xenstored, event channels and grants",
        command: "/rig/files/xenpv-rig-tests test",
    },
    Step {
        title: "XENVBD: ext4 made, filled, remounted and checked through our blkfront engine (as /dev/nbd0), then our engine vs Linux's xen-blkfront",
        command: "/rig/files/xenpv-rig-tests test vbd::filesystem_over_nbd && /rig/files/xenpv-rig-tests bench vbd",
    },
    Step {
        title: "TCP through our netfront engine vs Linux's xen-netfront, same netback, same boot (iperf3 both ways, 64 B UDP; ours/Linux)",
        command: "/rig/files/xenpv-rig-tests bench vif",
    },
];

/// The dom0 script that runs every step and reports each.
fn script() -> String {
    let total = STEPS.len();
    let mut script = String::from("failed=0\n");
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        let title = step.title.replace('\'', "");
        let _ = write!(
            script,
            "echo '=== DEMO STEP {n}/{total}: {title}'\n\
             ( {} ); rc=$?\n\
             if [ $rc = 0 ]; then echo '=== DEMO STEP {n}/{total} PASSED'; \
             else echo \"=== DEMO STEP {n}/{total} FAILED (exit $rc)\"; failed=1; fi\n",
            step.command
        );
    }
    script.push_str("exit $failed\n");
    script
}

fn is_demo_line(line: &str) -> bool {
    line.starts_with("=== ")
        || line.starts_with("SELFTEST ")
        || line.starts_with("sha256 ")
        || is_runner_line(line)
}

/// Runs the demo; returns the exit status.
pub fn run(rig: &Rig, mut opts: BootOptions) -> Result<i32, Failure> {
    opts.files.extend(programs::build(&rig.root)?);
    // Its suites step runs every suite, guest-hvm included.
    opts.hvm = true;
    opts.files.push(Shipped {
        dst: "/rig/files/selftest.sh".into(),
        payload: Payload::Bytes(SELFTEST.as_bytes().to_vec(), 0o755),
    });
    opts.files.push(Shipped {
        dst: "/rig/files/demo.sh".into(),
        payload: Payload::Bytes(script().into_bytes(), 0o755),
    });
    opts.relay = is_demo_line;
    let outcome = super::vm::boot(
        &rig.cache,
        &opts,
        &Mode::Run("bash /rig/files/demo.sh".into()),
    )?;
    println!("demo summary:");
    for line in outcome
        .relayed
        .iter()
        .filter(|l| l.starts_with("=== DEMO STEP") && !l.contains(": "))
    {
        println!("  {}", line.trim_start_matches("=== "));
    }
    println!(
        "demo {} (wall {:.1} s, log {})",
        if outcome.status == 0 {
            "PASSED"
        } else {
            "FAILED"
        },
        outcome.wall.as_secs_f64(),
        outcome.log.display()
    );
    Ok(outcome.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_every_step_and_fails_if_any_failed() {
        let script = script();
        assert_eq!(script.matches("=== DEMO STEP").count(), 3 * STEPS.len());
        assert!(script.ends_with("exit $failed\n"));
        assert!(is_demo_line("=== DEMO STEP 1/2 PASSED"));
    }
}
