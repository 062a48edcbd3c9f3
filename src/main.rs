fn main() -> std::process::ExitCode {
    tuna::app::main()
}
