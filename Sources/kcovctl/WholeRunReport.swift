import CoverageAPI
import TraceFile

/// The summary of a whole run (`trace --follow`): counts, one line per record, what was not traced.
struct WholeRunReport {
    var file: TraceFile
    var exit: CommandExit
    var peakBuffers: Int

    func summary() -> String {
        let tasks = Set(file.tasks.compactMap(\.order)).count
        let truncated = Set(file.tasks.filter(\.truncated).compactMap(\.order)).count
        let exitText = TraceReport(backend: file.backend, command: [], exit: exit, trace: file.mergedTrace, bufferWords: 0).exitDescription
        var lines = [
            "backend: \(file.backend) (\(file.mode.rawValue) mode, \(file.bufferWords ?? 0)-word buffer per task, whole run)",
            "command: \((file.command ?? []).joined(separator: " ")) — \(exitText)",
            "tasks: \(tasks) traced, \(truncated) truncated, \(file.untraced.count) not traced; \(file.tasks.count) records (one per task and image); at most \(peakBuffers) buffers held at once",
            "entries: \(file.entryCount)",
            "unique PCs: \(file.uniquePCCount)",
        ]
        if truncated > 0 { lines.append("truncated: \(truncated) tasks filled their buffers and dropped later entries; rerun with a larger --buffer-words") }
        lines.append("records (start order, pid/tid, parent, executable, entries, unique PCs, end):")
        for task in file.tasks {
            var line = "  #\(task.order.map(String.init) ?? "?") \(task.pid.map(String.init) ?? "?")/\(task.tid.map(String.init) ?? "?")"
            line += " parent \(task.parentPid.map(String.init) ?? "?") \(task.executable ?? "?"): \(task.entryCount) entries, \(Set(task.entryPCs).count) unique PCs"
            line += ", " + (task.end?.rawValue ?? "ended")
            if let exit = task.exit { line += " (\(Self.describe(exit)))" }
            if task.truncated { line += ", truncated" }
            if let tail = task.agentTail { line += ", agent loaded at entry \(tail) (exec, loader and the agent's 2 mmaps before it)" }
            if let reason = task.withoutAgent { line += " — without the agent: \(reason)" }
            lines.append(line)
        }
        if !file.untraced.isEmpty {
            lines.append("not traced (\(file.untraced.count)):")
            for task in file.untraced {
                let who = [task.pid.map { "pid \($0)" }, task.tid.map { "tid \($0)" }, task.executable].compactMap { $0 }.joined(separator: " ")
                lines.append("  \(who): \(task.reason)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func describe(_ exit: TraceFile.Exit) -> String {
        switch exit {
        case .status(let status): "status \(status)"
        case .signal(let signal): "signal \(signal)"
        case .timedOut: "timed out"
        }
    }
}
