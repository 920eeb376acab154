//! meshload binary: hands the arguments to the library and exits with its code.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(meshload::main_with_args(&args));
}
