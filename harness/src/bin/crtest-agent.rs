//! The guest agent: PID 1 of the cr-tests VM (see `crtest::guest::agent`).
fn main() {
    crtest::guest::agent::main()
}
