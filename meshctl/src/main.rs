//! meshctl: not built yet.
fn main() {
    eprintln!("meshctl: not built yet (see the open issues)");
    std::process::exit(2);
}
