//! The guest agent: PID 1 of the cr-tests VM (see `crtest::agent`).
fn main() {
    crtest::agent::main()
}
