//! placeholder until the classify bench lands
fn main() {}
