//! A tiny parser for `--name value` options with numeric values and defaults.
//!
//! Workload binaries take only unsigned integer options, so this is all they need (and
//! keeps them small). `--name=value` is accepted too; `--help`/`-h` asks for the help text.

use std::fmt;

/// One option: `--name METAVAR`, with its default and accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// Placeholder shown in the usage line, e.g. `N`.
    pub metavar: &'static str,
    /// Value when the option is not given.
    pub default: u64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// One-line description for `--help`.
    pub help: &'static str,
}

/// Parsed option values, one per declared [`Opt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    values: Vec<(&'static str, u64)>,
}

impl Args {
    /// The value of option `name`.
    ///
    /// # Panics
    /// If `name` was not among the declared options (a programming error).
    pub fn get(&self, name: &str) -> u64 {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("option --{name} was not declared"))
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these values.
    Run(Args),
    /// `--help` or `-h`: print the help and exit.
    Help,
}

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// An argument that is not a declared option.
    Unknown(String),
    /// An option given as the last argument, without its value.
    MissingValue(&'static str),
    /// An option value that is not an unsigned decimal integer.
    NotANumber { name: &'static str, value: String },
    /// An option value outside the option's range.
    OutOfRange {
        name: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// The same option given twice.
    Repeated(&'static str),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::Unknown(arg) => write!(f, "unknown argument `{arg}`"),
            UsageError::MissingValue(name) => write!(f, "option --{name} needs a value"),
            UsageError::NotANumber { name, value } => {
                write!(f, "option --{name}: `{value}` is not an unsigned integer")
            }
            UsageError::OutOfRange {
                name,
                value,
                min,
                max,
            } => write!(f, "option --{name}: {value} is outside {min}..={max}"),
            UsageError::Repeated(name) => write!(f, "option --{name} given twice"),
        }
    }
}

impl std::error::Error for UsageError {}

/// Parses `argv` (without the program name) against `opts`.
pub fn parse<I, S>(opts: &[Opt], argv: I) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut given: Vec<Option<u64>> = vec![None; opts.len()];
    let mut argv = argv.into_iter();
    while let Some(arg) = argv.next() {
        let arg = arg.as_ref();
        if arg == "--help" || arg == "-h" {
            return Ok(Parsed::Help);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(UsageError::Unknown(arg.to_owned()));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let Some(index) = opts.iter().position(|o| o.name == name) else {
            return Err(UsageError::Unknown(arg.to_owned()));
        };
        let opt = &opts[index];
        let text = match inline {
            Some(v) => v,
            None => argv
                .next()
                .map(|v| v.as_ref().to_owned())
                .ok_or(UsageError::MissingValue(opt.name))?,
        };
        let value: u64 = text.parse().map_err(|_| UsageError::NotANumber {
            name: opt.name,
            value: text.clone(),
        })?;
        if value < opt.min || value > opt.max {
            return Err(UsageError::OutOfRange {
                name: opt.name,
                value,
                min: opt.min,
                max: opt.max,
            });
        }
        if given[index].replace(value).is_some() {
            return Err(UsageError::Repeated(opt.name));
        }
    }
    let values = opts
        .iter()
        .zip(given)
        .map(|(o, v)| (o.name, v.unwrap_or(o.default)))
        .collect();
    Ok(Parsed::Run(Args { values }))
}

/// The one-line usage: `usage: PROG [--name METAVAR (default D)]...`.
pub fn usage(prog: &str, opts: &[Opt]) -> String {
    let mut line = format!("usage: {prog}");
    for o in opts {
        line.push_str(&format!(
            " [--{} {} (default {})]",
            o.name, o.metavar, o.default
        ));
    }
    line
}

/// The usage line followed by one line per option.
pub fn help(prog: &str, opts: &[Opt]) -> String {
    let mut text = usage(prog, opts);
    for o in opts {
        text.push_str(&format!(
            "\n  --{} {}  {} (default {}, range {}..={})",
            o.name, o.metavar, o.help, o.default, o.min, o.max
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt {
            name: "records",
            metavar: "N",
            default: 1024,
            min: 1,
            max: 1 << 20,
            help: "records to copy",
        },
        Opt {
            name: "interval-ms",
            metavar: "MS",
            default: 20,
            min: 0,
            max: 1000,
            help: "pause between records",
        },
    ];

    fn run(argv: &[&str]) -> Args {
        match parse(OPTS, argv).unwrap() {
            Parsed::Run(a) => a,
            Parsed::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn defaults_when_absent() {
        let a = run(&[]);
        assert_eq!(a.get("records"), 1024);
        assert_eq!(a.get("interval-ms"), 20);
    }

    #[test]
    fn separate_and_inline_values() {
        let a = run(&["--interval-ms", "0", "--records=7"]);
        assert_eq!(a.get("records"), 7);
        assert_eq!(a.get("interval-ms"), 0);
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(OPTS, ["--records", "3", "-h"]), Ok(Parsed::Help));
        assert_eq!(parse(OPTS, ["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn errors_are_precise() {
        let cases: &[(&[&str], UsageError, &str)] = &[
            (
                &["--bogus", "1"],
                UsageError::Unknown("--bogus".into()),
                "unknown argument `--bogus`",
            ),
            (
                &["records"],
                UsageError::Unknown("records".into()),
                "unknown argument `records`",
            ),
            (
                &["--records"],
                UsageError::MissingValue("records"),
                "option --records needs a value",
            ),
            (
                &["--records", "-1"],
                UsageError::NotANumber {
                    name: "records",
                    value: "-1".into(),
                },
                "option --records: `-1` is not an unsigned integer",
            ),
            (
                &["--records", "0"],
                UsageError::OutOfRange {
                    name: "records",
                    value: 0,
                    min: 1,
                    max: 1 << 20,
                },
                "option --records: 0 is outside 1..=1048576",
            ),
            (
                &["--records", "1", "--records=2"],
                UsageError::Repeated("records"),
                "option --records given twice",
            ),
        ];
        for (argv, want, text) in cases {
            let got = parse(OPTS, argv.iter()).unwrap_err();
            assert_eq!(&got, want, "{argv:?}");
            assert_eq!(got.to_string(), *text, "{argv:?}");
        }
    }

    #[test]
    fn usage_is_one_line_with_defaults() {
        let u = usage("fileio1", OPTS);
        assert_eq!(
            u,
            "usage: fileio1 [--records N (default 1024)] [--interval-ms MS (default 20)]"
        );
        let h = help("fileio1", OPTS);
        assert!(h.starts_with(&u));
        assert!(h.contains("--interval-ms MS  pause between records (default 20, range 0..=1000)"));
    }

    #[test]
    #[should_panic(expected = "--nope was not declared")]
    fn undeclared_get_panics() {
        run(&[]).get("nope");
    }
}
