//! meshstat: not built yet.
fn main() {
    eprintln!("meshstat: not built yet (see the open issues)");
    std::process::exit(2);
}
