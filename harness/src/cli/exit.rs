//! The one place where what a command came to becomes the process's exit code, the codes
//! the README documents:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | all good (every scenario passed or failed as expected; compatible; no regression) |
//! | 1 | a scenario failed, a regression, an incompatibility |
//! | 2 | bad usage or bad input (a scenario file, a name, a directory that is not what it should be) |
//! | 3 | the infrastructure could not run (QEMU, images, the network, a full disk) |
//! | 128+N | stopped by signal N |
//!
//! Commands return `Result<Done, CliError>`; library errors say whether the input is at
//! fault (`is_bad_input`), and [`CliError`]'s conversions read that. Nothing else in the
//! crate chooses an exit code.

use std::error::Error;
use std::fmt;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exit 0.
    Good,
    /// Exit 1: something under test is wrong.
    Bad,
    /// Exit 128+N: a signal asked the run to stop (the results so far are saved).
    Stopped(i32),
}

impl Done {
    /// `Bad` when `bad`, else `Good`.
    pub fn good_unless(bad: bool) -> Done {
        if bad {
            Done::Bad
        } else {
            Done::Good
        }
    }
}

/// Who is at fault when a command could not do its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The command line or its input: exit 2.
    Input,
    /// The machine or a service it needs: exit 3.
    Infrastructure,
}

/// A command that could not do its work: the error (its causes are printed once each,
/// see [`crate::diagnose::chain`]) and who is at fault.
#[derive(Debug)]
pub struct CliError {
    pub blame: Blame,
    pub error: Box<dyn Error + Send + Sync>,
}

impl CliError {
    pub fn input(error: impl Into<Box<dyn Error + Send + Sync>>) -> CliError {
        CliError {
            blame: Blame::Input,
            error: error.into(),
        }
    }

    pub fn infra(error: impl Into<Box<dyn Error + Send + Sync>>) -> CliError {
        CliError {
            blame: Blame::Infrastructure,
            error: error.into(),
        }
    }

    /// `input` when `bad_input`, else `infra`.
    pub fn by(bad_input: bool, error: impl Into<Box<dyn Error + Send + Sync>>) -> CliError {
        if bad_input {
            CliError::input(error)
        } else {
            CliError::infra(error)
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::diagnose::chain::chain(self.error.as_ref()))
    }
}

/// The exit code of a command's result.
pub fn code(result: &Result<Done, CliError>) -> i32 {
    match result {
        Ok(Done::Good) => 0,
        Ok(Done::Bad) => 1,
        Ok(Done::Stopped(signal)) => 128 + signal,
        Err(CliError {
            blame: Blame::Input,
            ..
        }) => 2,
        Err(CliError {
            blame: Blame::Infrastructure,
            ..
        }) => 3,
    }
}

/// `From` for library errors: `judged` ones say themselves whether the input is at fault
/// (`is_bad_input`); the others are always the input's (`CliError::input`) or always the
/// machine's (`CliError::infra`).
macro_rules! from_errors {
    (judged: $($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> CliError {
                CliError::by(e.is_bad_input(), e)
            }
        }
    )*};
    ($make:path: $($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> CliError {
                $make(e)
            }
        }
    )*};
}

from_errors!(judged:
    crate::host::bisect::driver::BisectError,
    crate::host::vm_run::PrepareError,
    crate::host::host_run::HostError,
    crate::host::kernel_build::BuildError,
    crate::host::catalog::CatalogError,
    crate::host::cell_choice::ChoiceError,
    crate::host::matrix::MatrixError,
    crate::report::merge::MergeError,
    crate::host::profile::ProfileError,
);

from_errors!(CliError::input:
    crate::model::scenario::ScenarioError,
    crate::results::run::LoadError,
    crate::report::kcidb::OriginError,
    crate::host::cell_choice::CellChoiceError,
    crate::host::shard::ShardError,
    crate::report::durations::DurationsError,
);

from_errors!(CliError::infra:
    crate::results::run::ResultsError,
    crtest_vm::hostdeps::HostDepsError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_documented_code() {
        assert_eq!(code(&Ok(Done::Good)), 0);
        assert_eq!(code(&Ok(Done::Bad)), 1);
        assert_eq!(code(&Ok(Done::Stopped(15))), 143);
        assert_eq!(code(&Err(CliError::input("x"))), 2);
        assert_eq!(code(&Err(CliError::infra("x"))), 3);
    }

    #[test]
    fn errors_print_each_cause_once() {
        let e = CliError::from(crate::host::catalog::CatalogError::NothingChosen);
        assert_eq!(e.blame, Blame::Input);
        assert_eq!(
            e.to_string(),
            "no scenario matches the selection (see `crtest list`)"
        );
    }
}
