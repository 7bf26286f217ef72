//! placeholder until the cap bench lands
fn main() {}
