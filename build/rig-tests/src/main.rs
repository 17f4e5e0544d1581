//! `xenpv-rig-tests`: runs the rig suites inside dom0. See the crate docs.

use std::process::ExitCode;

use rig_tests::{run_benches, run_tests, select, suites};

const USAGE: &str = "\
usage: xenpv-rig-tests test [SUITE[::TEST_PREFIX]...]
       xenpv-rig-tests bench [SUITE[::BENCH_PREFIX]...]
       xenpv-rig-tests list
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, selectors)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if command == "list" {
        for suite in suites::ALL {
            for test in suite.tests {
                println!("test  {}::{}", suite.name, test.name);
            }
            for bench in suite.benches {
                println!("bench {}::{}", suite.name, bench.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let selected = match select(suites::ALL, selectors) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("xenpv-rig-tests: {message}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout();
    let summary = match command.as_str() {
        "test" => run_tests(&selected, &mut stdout),
        "bench" => run_benches(&selected, &mut stdout),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!("{}", summary.line());
    if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
