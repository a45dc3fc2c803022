import KernelImage
import TraceFile

/// The rules a whole run of ``FollowWorkload`` must meet (Docs/follow.md), checked against what
/// the workload logged: every task it made is a record, each thread holds its own syscall,
/// the exec chain is split per image, the killed, `_exit` and static children say how they ended.
/// Returns one line per broken rule.
func followRuleViolations(_ file: TraceFile, log: String, image: KernelImage) -> [String] {
    var problems: [String] = []
    func functions(_ task: TraceFile.Task) -> Set<String> { Set(Set(task.entryPCs).compactMap { image.function(containing: $0)?.name }) }
    func has(_ task: TraceFile.Task, syscall: String) -> Bool {
        let token = FollowWorkload.kernelToken[syscall] ?? "sys_" + syscall
        return functions(task).contains { $0.contains(token) }
    }
    let lines = log.split(separator: "\n").filter { $0.hasPrefix("follow: ") }.map { $0.split(separator: " ").map(String.init) }
    func records(pid: Int32) -> [TraceFile.Task] { file.tasks.filter { $0.pid == pid } }

    if !file.untraced.isEmpty { problems.append("untraced tasks: \(file.untraced.map(\.reason))") }
    var threads = 0
    for line in lines where line[1] == "thread" {
        threads += 1
        guard let tid = Int32(line[4]), let record = file.tasks.first(where: { $0.tid == tid && $0.end == .threadExit }) else {
            problems.append("thread \(line[2]) (\(line[5])): no record ending threadExit with tid \(line[4])")
            continue
        }
        if !has(record, syscall: line[5]) {
            problems.append("thread tid \(tid): no PC of sys_\(line[5]); its functions with sys_ or sched: \(functions(record).filter { $0.contains("sys_") || $0.contains("sched") }.sorted())")
        }
        for other in FollowWorkload.syscalls where other != line[5] && has(record, syscall: other) {
            problems.append("thread tid \(tid) (\(line[5])) holds sys_\(other), another thread's syscall")
        }
    }
    if threads != 16 { problems.append("the workload logged \(threads) threads, not 16") }
    var treePids: [Int32] = []
    for line in lines where line[1] == "tree" {
        guard let pid = Int32(line[4]), let parent = Int32(line[6]) else { continue }
        treePids.append(pid)
        guard let record = records(pid: pid).first else {
            problems.append("tree level \(line[2]) pid \(pid): no record")
            continue
        }
        if line[2] != "0", record.parentPid != parent { problems.append("tree level \(line[2]) pid \(pid): parent \(record.parentPid ?? -1), not \(parent)") }
    }
    if treePids.count != 4 { problems.append("the workload logged \(treePids.count) tree levels, not 4") }
    if let chain = lines.first(where: { $0[1] == "chain" }), let pid = Int32(chain[4]) {
        let images = records(pid: pid)
        let ends = images.map { $0.end?.rawValue ?? "none" }
        if images.count != 5 || images.last?.executable != "/bin/true" || ends != ["exec", "exec", "exec", "exec", "exit"] {
            problems.append("exec chain pid \(pid): records \(images.map { $0.executable ?? "?" }) ending \(ends), not 4 images of the workload then /bin/true")
        }
    } else {
        problems.append("the workload logged no exec chain")
    }
    if let victim = lines.first(where: { $0[1] == "victim" }), let pid = Int32(victim[3]) {
        let record = records(pid: pid).last
        if record?.end != .killed || !(record.map { has($0, syscall: "getppid") } ?? false) {
            problems.append("SIGKILLed child pid \(pid): \(record.map { "ended \($0.end?.rawValue ?? "?")" } ?? "no record"), expected killed with its getppid loop")
        }
    }
    if let quitter = lines.first(where: { $0[1] == "quitter" }), let pid = Int32(quitter[3]) {
        let record = records(pid: pid).last
        if record?.end != .exit || record?.exit != .status(7) { problems.append("_exit(7) child pid \(pid): \(String(describing: record?.end)) \(String(describing: record?.exit))") }
    }
    if let child = lines.first(where: { $0[1] == "static" }), let pid = Int32(child[3]) {
        let record = records(pid: pid).last
        if !(record?.withoutAgent?.hasPrefix("static executable") ?? false) || !(record.map { has($0, syscall: "getcpu") } ?? false) {
            problems.append("static child pid \(pid): \(record?.withoutAgent ?? "no reason"), expected its getcpu traced and 'static executable'")
        }
    } else {
        problems.append("the workload logged no static child")
    }
    return problems
}
