fn main() {
    std::process::exit(imreg_cli::main());
}
