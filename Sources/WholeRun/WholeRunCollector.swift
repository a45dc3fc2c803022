public import CoverageAPI
public import TraceFile
import CKcovFollowProtocol
import CKernelShim
import KernelSeam
import LinuxBackend

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What `kcovctl trace --follow` runs: a command, every task of it traced by the agent.
public struct WholeRunRequest: Sendable {
    /// The command; its environment gains `LD_PRELOAD` of the agent and the agent's settings.
    public var command: Command
    /// The agent library (`libKcovFollowAgent.so`), an absolute path.
    public var agentPath: String
    /// Each task's buffer in 64-bit words, count word included (Docs/follow.md#kernel-memory).
    public var bufferWords: Int
    public var mode: CoverageMode
    /// How long to wait, after the command exits, for descendants still running; then their
    /// buffers are read as they are (records end `running`).
    public var linger: Duration

    /// 1 Mi words (8 MiB) per task: an exec from the test kernel's 9p root with its loader fills
    /// about 250 Ki entries before `main`; the kernel holds one per live task (Docs/follow.md#kernel-memory).
    public static let defaultBufferWords = 1 << 20

    public init(command: Command, agentPath: String, bufferWords: Int = defaultBufferWords, mode: CoverageMode = .pc, linger: Duration = .seconds(5)) {
        self.command = command
        self.agentPath = agentPath
        self.bufferWords = bufferWords
        self.mode = mode
        self.linger = linger
    }
}

/// A whole run's result: the trace file (one record per task and image, the untraced list) and
/// how the command ended.
public struct WholeRunResult: Sendable {
    public var exit: CommandExit
    public var traceFile: TraceFile
    /// Most kcov buffers held at once (the kernel-memory bound's measured side).
    public var peakBuffers: Int
}

/// Collects a whole run (Docs/follow.md): starts the command with the agent, takes every task's
/// kcov fd over the socket, reads each buffer when its task is over, splits it at execs.
public enum WholeRunCollector {
    /// Runs `request` and waits until the command and every traced descendant are gone (at most
    /// `linger` after the command).
    ///
    /// - Throws: `.invalidArgument` for a buffer size kcov refuses or a missing agent;
    ///   `.commandFailed` when the command cannot be started; `.system` when the socket cannot be made.
    public static func run(_ request: WholeRunRequest) throws(CoverageError) -> WholeRunResult {
        guard request.bufferWords >= 2, request.bufferWords <= Int(Int32.max) / 8 else {
            throw CoverageError(.invalidArgument, "a task's buffer must be 2 to \(Int(Int32.max) / 8) words, not \(request.bufferWords)")
        }
        guard access(request.agentPath, R_OK) == 0 else {
            throw CoverageError(
                .invalidArgument, "the follow agent \(request.agentPath) cannot be read (\(String(cString: strerror(errno)))): build it with `swift build`")
        }
        let timeout = try Command.milliseconds(of: request.command.timeout)
        raiseDescriptorLimit()
        var run = try Run(request: request)
        defer { run.close() }
        try run.start(timeoutMilliseconds: timeout)
        run.loop()
        return run.result()
    }

    /// Each live task holds one fd here: allow as many as the hard limit.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// One task the agent registered: its kcov fd until the buffer is read.
struct TaskEntry {
    var tid: Int32
    var fd: Int32
    var order: Int
    var executable: String
}

/// One connected process.
struct ProcessEntry {
    var connection: Int32
    var pid: Int32 = 0
    var parentPid: Int32 = 0
    var executable = ""
    var controlFD: Int32 = -1
    var control: UnsafeMutableRawPointer?
    var tasks: [TaskEntry] = []
    /// The connection ended while the process still ran (it closed the socket): wait for it to go.
    var closedAt: ContinuousClock.Instant?
    /// The command itself, started by the collector with its control page.
    var startedHere = false
}

/// The state of one run: the listener, the processes, the records read so far.
struct Run {
    let request: WholeRunRequest
    let listener: Int32
    let socketName: String
    var child: Int32 = -1
    var childStatus: CommandExit?
    var childExitedAt: ContinuousClock.Instant?
    var deadline: ContinuousClock.Instant?
    var processes: [ProcessEntry] = []
    var records: [TraceFile.Task] = []
    var untraced: [TraceFile.UntracedTask] = []
    var nextOrder = 0
    var endOrder = 0
    var liveBuffers = 0
    var peakBuffers = 0

    init(request: WholeRunRequest) throws(CoverageError) {
        self.request = request
        socketName = "kcovfollow.\(getpid()).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        listener = kfp_listen(socketName)
        guard listener >= 0 else { throw CoverageError.system("socket", errno: errno) }
    }

    // MARK: start

    /// Starts the command the way `kcovctl trace` without --follow does — its ENABLE in the
    /// child before the exec, so the exec and the loader are in its record — and as if it were an
    /// exec'ing task of a traced process: a control page the command claims, its kcov fd kept
    /// open and named there, one end of a socket pair as its connection.
    mutating func start(timeoutMilliseconds: Int32?) throws(CoverageError) {
        let words = request.bufferWords
        // Not close-on-exec: the command maps it again after the exec.
        let kcov = open("/sys/kernel/debug/kcov", O_RDWR)
        guard kcov >= 0 else {
            let code = errno
            throw CoverageError(
                code == ENOENT ? .deviceMissing : code == EACCES || code == EPERM ? .permissionDenied : .system,
                "cannot open /sys/kernel/debug/kcov: \(String(cString: strerror(code))) (mount debugfs, run as root, use a kernel with CONFIG_KCOV)",
                syscall: "open", errno: code)
        }
        var pair: [Int32] = [-1, -1]
        var keep = false
        defer {
            if !keep {
                Glibc.close(kcov)
                for end in pair where end >= 0 { Glibc.close(end) }
            }
        }
        guard kcs_ioctl_value(kcov, LinuxKcovABI.initTrace, UInt(words)) == 0 else {
            throw CoverageError(.bufferSize, "KCOV_INIT_TRACE(\(words)) failed: \(String(cString: strerror(errno)))", syscall: "ioctl", errno: errno)
        }
        guard let buffer = mmap(nil, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, kcov, 0), buffer != MAP_FAILED else {
            throw CoverageError.system("mmap", errno: errno)
        }
        defer { munmap(buffer, words * 8) }
        let page = try ControlPage.create()
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &pair) == 0 else { throw CoverageError.system("socketpair", errno: errno) }
        _ = fcntl(pair[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pair[0], F_SETFL, O_NONBLOCK)
        page.prepareForCommand(keptFD: kcov)

        var environment = request.command.environment.filter { !$0.hasPrefix("KCOVFOLLOW_") && !$0.hasPrefix("LD_PRELOAD=") }
        let preload = request.command.environment.first { $0.hasPrefix("LD_PRELOAD=") }.map { String($0.dropFirst(11)) }
        environment.append("LD_PRELOAD=" + ([request.agentPath] + (preload.map { [$0] } ?? [])).joined(separator: " "))
        environment.append("\(KFP_ENV_SOCKET)=\(socketName)")
        environment.append("\(KFP_ENV_WORDS)=\(words)")
        environment.append("\(KFP_ENV_MODE)=\(request.mode == .comparisons ? 1 : 0)")
        environment.append("\(KFP_ENV_STATE)=\(page.fd):\(pair[1])")
        var command = request.command
        command.environment = environment
        let enable = EnableCall(request: LinuxKcovABI.enable, argument: request.mode == .comparisons ? 1 : 0, byPointer: false)
        switch SystemKernel().spawnEnabled(command, fd: kcov, enable: enable, buffer: buffer, bufferBytes: words * 8) {
        case .running(let pid):
            child = pid
        case .enableFailed(let code):
            page.release()
            throw CoverageError(.system, "the command's KCOV_ENABLE failed: \(String(cString: strerror(code)))", syscall: "ioctl", errno: code)
        case .execFailed(let code):
            page.release()
            throw CoverageError(.commandFailed, "cannot run \(command.path): \(String(cString: strerror(code)))", syscall: "execve", errno: code)
        case .redirectFailed(let code), .forkFailed(let code):
            page.release()
            throw CoverageError.system("fork", errno: code)
        }
        keep = true
        Glibc.close(pair[1])
        _ = fcntl(kcov, F_SETFD, FD_CLOEXEC)
        processes.append(ProcessEntry(
            connection: pair[0], pid: child, parentPid: getpid(), executable: command.path, controlFD: page.fd, control: page.base,
            tasks: [TaskEntry(tid: child, fd: kcov, order: 0, executable: command.path)], startedHere: true))
        nextOrder = 1
        liveBuffers = 1
        peakBuffers = 1
        if let timeoutMilliseconds { deadline = .now + .milliseconds(Int64(timeoutMilliseconds)) }
    }

    // MARK: the loop

    mutating func loop() {
        while true {
            var polled = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            polled += processes.map { pollfd(fd: $0.connection, events: Int16(POLLIN), revents: 0) }
            _ = poll(&polled, nfds_t(polled.count), 20)
            acceptAll()
            for index in processes.indices.reversed() { drain(index) }
            reapChild(blocking: false)
            recheckClosed()
            guard let exitedAt = childExitedAt else { continue }
            if processes.isEmpty {
                // One more look for a descendant that was about to connect.
                var last = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
                if poll(&last, 1, 50) > 0 { continue }
                return
            }
            if ContinuousClock.now - exitedAt > request.linger {
                for index in processes.indices.reversed() { finish(index, end: .running) }
                return
            }
        }
    }

    mutating func acceptAll() {
        while true {
            let connection = kfp_accept(listener)
            guard connection >= 0 else { return }
            processes.append(ProcessEntry(connection: connection))
        }
    }

    /// Reads every message waiting on process `index`'s connection; its end finishes the process.
    mutating func drain(_ index: Int) {
        guard processes[index].closedAt == nil else { return }
        while true {
            var message = kfp_message()
            var fd: Int32 = -1
            let got = kfp_receive(processes[index].connection, &message, &fd)
            if got == 1 {
                handle(message, fd: fd, process: index)
                continue
            }
            if got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                connectionEnded(index)
            }
            return
        }
    }

    mutating func handle(_ message: kfp_message, fd: Int32, process index: Int) {
        let text = withUnsafeBytes(of: message.text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch Int(message.kind) {
        case Int(KFP_HELLO.rawValue):
            processes[index].pid = message.pid
            processes[index].parentPid = message.ppid
            processes[index].executable = text
            if fd >= 0 {
                let page = mmap(nil, Int(KFP_CONTROL_BYTES), PROT_READ, MAP_SHARED, fd, 0)
                if page != MAP_FAILED, let page { processes[index].control = page }
                processes[index].controlFD = fd
            }
        case Int(KFP_TASK.rawValue):
            guard fd >= 0 else { return }
            // The image the task registered in, as the agent names it: not the page's newest image,
            // which a task that exec'd before the collector read this message has already replaced.
            let executable = text.isEmpty ? processes[index].executable : text
            processes[index].tasks.append(TaskEntry(tid: message.tid, fd: fd, order: nextOrder, executable: executable))
            nextOrder += 1
            liveBuffers += 1
            peakBuffers = max(peakBuffers, liveBuffers)
        case Int(KFP_DONE.rawValue):
            if let at = processes[index].tasks.firstIndex(where: { $0.tid == message.tid }) {
                let task = processes[index].tasks.remove(at: at)
                read(task, of: processes[index], end: .threadExit)
            }
        case Int(KFP_FAILED.rawValue):
            if fd >= 0 { Glibc.close(fd) }
            untraced.append(TraceFile.UntracedTask(
                pid: message.pid, tid: message.tid, executable: processes[index].executable.isEmpty ? nil : processes[index].executable,
                reason: "\(text) failed: \(String(cString: strerror(message.error)))"))
        default:
            if fd >= 0 { Glibc.close(fd) }
        }
    }

    /// The connection ended: the process is gone (Docs/follow.md: the socket closes in
    /// `exit_files`, after every task's `kcov_task_exit`), unless it closed the socket itself.
    mutating func connectionEnded(_ index: Int) {
        let pid = processes[index].pid
        if pid > 0, isRunning(pid) {
            processes[index].closedAt = .now
            return
        }
        finish(index, end: nil)
    }

    mutating func recheckClosed() {
        for index in processes.indices.reversed() where processes[index].closedAt != nil {
            if !isRunning(processes[index].pid) { finish(index, end: nil) }
        }
    }

    /// `pid` exists and is not a zombie.
    func isRunning(_ pid: Int32) -> Bool {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        guard fgets(&line, 512, file) != nil else { return false }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        let state = text[text.index(after: close)...].dropFirst().first
        return state != "Z" && state != "X"
    }

    /// Reaps the command when it has exited (`blocking`: waits for it, for a process whose
    /// connection ended and so is gone); kills it when its timeout is up.
    mutating func reapChild(blocking: Bool) {
        guard childStatus == nil, child > 0 else { return }
        var status: Int32 = 0
        var done: Int32
        repeat { done = waitpid(child, &status, blocking ? 0 : WNOHANG) } while done < 0 && errno == EINTR
        if done == child {
            let signal = status & 0x7f
            if signal == 0 {
                childStatus = .exited((status >> 8) & 0xff)
            } else {
                childStatus = signal == SIGKILL && killedForTimeout ? .timedOut : .signaled(signal)
            }
            childExitedAt = .now
            return
        }
        if let deadline, ContinuousClock.now >= deadline, !killedForTimeout {
            kill(child, SIGKILL)
            killedForTimeout = true
        }
    }

    var killedForTimeout = false

    /// Every remaining buffer of process `index`, split at its execs; then its resources.
    mutating func finish(_ index: Int, end: TraceFile.TaskEnd?) {
        let process = processes.remove(at: index)
        if process.pid == child, end == nil { reapChild(blocking: true) }
        let page = ControlPage(process.control)
        for task in process.tasks {
            let taskEnd: TraceFile.TaskEnd
            if let end {
                taskEnd = end
            } else if task.tid == process.pid || page.execTid(task.tid, becomes: process.pid) {
                taskEnd = page.exitKind == 0 && !(process.pid == child && childStatus.map(\.isExit) == true) ? .killed : .exit
            } else {
                taskEnd = .groupExit
            }
            read(task, of: process, end: taskEnd)
        }
        if page.eventCount > Int(KFP_CONTROL_EVENTS) {
            untraced.append(TraceFile.UntracedTask(
                pid: process.pid, executable: process.executable,
                reason: "\(page.eventCount - Int(KFP_CONTROL_EVENTS)) exec events did not fit the control page: images after the \(KFP_CONTROL_EVENTS)th are not split apart"))
        }
        if let control = process.control { munmap(control, Int(KFP_CONTROL_BYTES)) }
        if process.controlFD >= 0 { Glibc.close(process.controlFD) }
        Glibc.close(process.connection)
    }

    /// Maps, copies and closes one task's buffer; appends its records, one per image.
    mutating func read(_ task: TaskEntry, of process: ProcessEntry, end: TraceFile.TaskEnd) {
        defer {
            Glibc.close(task.fd)
            liveBuffers -= 1
        }
        let bytes = request.bufferWords * 8
        guard let mapping = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, task.fd, 0), mapping != MAP_FAILED else {
            untraced.append(TraceFile.UntracedTask(
                pid: process.pid, tid: task.tid, executable: task.executable,
                reason: "its buffer could not be mapped to be read: \(String(cString: strerror(errno)))"))
            return
        }
        let trace = CoverageBuffer(address: mapping, wordCount: request.bufferWords).read(mode: request.mode, pcKind: .kernelAddress)
        munmap(mapping, bytes)
        let order = endOrder
        endOrder += 1
        var segments = ControlPage(process.control).segments(of: task, pid: process.pid, entries: trace.count)
        if process.startedHere, task.order == 0, ControlPage(process.control).isUnclaimed {
            // The command never loaded the agent: traced from its exec like `trace` without --follow.
            segments[0].withoutAgent = ImageCheck.whyWithoutAgent(request.command.path)
        }
        let isCommand = process.startedHere && task.order == 0
        for (index, segment) in segments.enumerated() {
            let last = index == segments.count - 1
            var record = TraceFile.Task(
                pid: process.pid, tid: segment.tid, parentPid: process.parentPid, executable: segment.executable, order: task.order,
                truncated: last && trace.truncated,
                pcs: request.mode == .pc ? Array(trace.pcs[segment.range]) : [],
                comparisons: request.mode == .comparisons ? Array(trace.comparisons[segment.range]) : [],
                // An image without the agent cannot say how it ended.
                end: last ? (segment.withoutAgent == nil || isCommand ? end : nil) : .exec, endOrder: order, withoutAgent: segment.withoutAgent,
                agentTail: segment.agentTail)
            if last, end == .exit {
                if process.pid == child, let childStatus {
                    record.exit = TraceFile.Exit(childStatus)
                } else if let status = ControlPage(process.control).exitStatus {
                    record.exit = .status(status)
                }
            }
            if last, end == .killed, process.pid == child, let childStatus { record.exit = TraceFile.Exit(childStatus) }
            records.append(record)
        }
    }

    // MARK: the result

    func result() -> WholeRunResult {
        let file = TraceFile(
            backend: "linux", unit: .pc, mode: request.mode, command: request.command.arguments, exit: childStatus.map(TraceFile.Exit.init),
            bufferWords: request.bufferWords, tasks: records.sorted { ($0.order ?? 0, $0.endOrder ?? 0) < ($1.order ?? 0, $1.endOrder ?? 0) },
            untraced: self.untraced)
        return WholeRunResult(exit: childStatus ?? .timedOut, traceFile: file, peakBuffers: peakBuffers)
    }

    func close() {
        Glibc.close(listener)
        for process in processes {
            for task in process.tasks { Glibc.close(task.fd) }
            if let control = process.control { munmap(control, Int(KFP_CONTROL_BYTES)) }
            if process.controlFD >= 0 { Glibc.close(process.controlFD) }
            Glibc.close(process.connection)
        }
    }
}

extension CommandExit {
    /// It called exit (or returned from main).
    var isExit: Bool {
        if case .exited = self { return true }
        return false
    }
}
