//! meshload: not built yet.
fn main() {
    eprintln!("meshload: not built yet (see the open issues)");
    std::process::exit(2);
}
