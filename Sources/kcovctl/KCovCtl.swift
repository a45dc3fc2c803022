import ArgumentParser

@main
struct KCovCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kcovctl",
        abstract: "Kernel code coverage through one API (Linux, NetBSD and gVisor kcov, kprobes) and reports of it.",
        discussion: """
            Exit status: 0 success, 1 failure, 2 backend unavailable here, 64 usage error.
            """,
        subcommands: [BackendsCommand.self, TraceCommand.self, SignalCommand.self, MergeCommand.self, ReportCommand.self, DiffCommand.self, ConformanceCommand.self, VMCommand.self, SymbolizeCommand.self])
}
