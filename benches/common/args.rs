//! The benches' command lines: `--flag VALUE` pairs and `-h`/`--help`, no
//! parser crate (a bench's flags are few and its usage text is the
//! documentation). What a flag means and what values it accepts stay in
//! each bench.

use std::str::FromStr;

use super::fail;

/// The arguments after the program name, for one bench with its usage text.
pub struct Args {
    usage: &'static str,
    rest: std::env::Args,
}

impl Args {
    pub fn new(usage: &'static str) -> Args {
        let mut rest = std::env::args();
        rest.next();
        Args { usage, rest }
    }

    /// The next flag; `--help` prints the usage and exits 0.
    pub fn flag(&mut self) -> Option<String> {
        loop {
            let arg = self.rest.next()?;
            match arg.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => continue,
                "-h" | "--help" => {
                    println!("{}", self.usage);
                    std::process::exit(0);
                }
                _ => return Some(arg),
            }
        }
    }

    /// The value after `flag`.
    pub fn value(&mut self, flag: &str) -> String {
        let usage = self.usage;
        self.rest
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value\n{usage}")))
    }

    /// The value after `flag`, parsed.
    pub fn parse<T: FromStr>(&mut self, flag: &str) -> T {
        let value = self.value(flag);
        self.parsed(flag, &value)
    }

    /// `value` (given to `flag`) parsed.
    pub fn parsed<T: FromStr>(&self, flag: &str, value: &str) -> T {
        value
            .parse()
            .unwrap_or_else(|_| self.bad(&format!("{flag}: {value:?} is not valid")))
    }

    /// Fails with `message` and the usage.
    pub fn bad(&self, message: &str) -> ! {
        fail(&format!("{message}\n{}", self.usage))
    }

    pub fn unknown(&self, flag: &str) -> ! {
        self.bad(&format!("unknown argument {flag:?}"))
    }
}
