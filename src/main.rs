fn main() -> std::process::ExitCode {
    tuna::cli::main()
}
