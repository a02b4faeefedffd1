//! CRIU's own test suite, zdtm, as a source of scenarios (`--zdtm DIR`): a test's `.desc`
//! read natively ([`desc`]), and the built tests turned into scenarios ([`suite`]). The
//! build itself is `crtest_vm::zdtm_build`; the protocol a test is run with is
//! `crate::exec::zdtm`.

pub mod ci_profile;
pub mod desc;
pub mod known;
pub mod partition;
pub mod suite;
