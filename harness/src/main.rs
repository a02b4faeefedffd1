//! `crtest`: the command line. All logic lives in the library.
fn main() {
    std::process::exit(crtest::cli::main());
}
