public import CoverageAPI

/// One kcovctl trace file: what `kcovctl trace` writes and `kcovctl report` reads, versions 1 to 3.
///
/// The JSON shape (PCs and operands are `0x%016x` hex strings, since kernel addresses do not fit
/// a JSON double):
///
/// ```
/// { "format": "kcovctl-trace", "version": 1,
///   "backend": "linux",                       // any backend name; "unknown" for rawcover input
///   "unit": "pc" | "synthetic-block" | "function",
///   "mode": "pc" | "cmp",
///   "pcFormat": "current" | "legacy" | "unknown",   // unit synthetic-block only, and required there
///   "command": ["/bin/cat", "/proc/version"],       // optional
///   "exit": {"status": 0} | {"signal": 9} | {"timedOut": true},   // optional
///   "bufferWords": 4194304,                         // optional
///   "probedFunctions": [{"name", "pc"}],            // unit function only: the report's denominator
///   "skippedFunctions": [{"name", "reason"}],       // unit function only
///   "untraced": [{"pid"?, "tid"?, "executable"?, "reason"}],   // version 2: tasks a whole run could not trace
///   "kernel": {"release", "text"?, "unavailable"?,             // version 3: the kernel's layout (Docs/modules.md)
///              "modules": [{"name", "base", "size", "sections": {".text": "0x…", …}, "buildID"?}]},
///   "tasks": [ { "pid"?, "tid"?, "parentPid"?, "executable"?, "order"?, "exit"?, "truncated": false,
///                "end"?, "endOrder"?, "withoutAgent"?, "agentTail"?,   // version 2 (whole runs, Docs/follow.md)
///                "pcs": ["0xffffffff81000010", …],          // units pc and synthetic-block in mode pc
///                "comparisons": [{"pc", "type", "arg1", "arg2"}],   // mode cmp ("size", "const" optional)
///                "functions": [{"name", "pc", "hits"}] } ] }        // unit function
/// ```
///
/// A file is written as version 1 unless it uses a version-2 field (``untraced`` or a task's
/// ``Task/end``, ``Task/endOrder``, ``Task/withoutAgent``, ``Task/agentTail``) or the version-3
/// ``kernel`` layout, so readers that know only version 1 keep reading the traces they can use.
///
/// Which lists a task holds follows from ``unit`` and ``mode``: exactly one of `pcs`,
/// `comparisons` and `functions`, the others empty (and absent from the JSON). Writing a value
/// that breaks this throws; reading a file that breaks it throws. Read with ``read(path:)`` or
/// ``decode(_:source:)`` (which also take the JSON of older kcovctl versions and rawcover), write
/// with ``jsonData()`` (fast) or any `JSONEncoder`.
public struct TraceFile: Sendable, Hashable {
    /// The value of the `"format"` key.
    public static let formatName = "kcovctl-trace"
    /// The highest version this reader knows; ``writtenVersion`` is what a value is written as.
    public static let currentVersion = 3

    /// The backend that recorded the trace (`linux`, `netbsd`, `gvisor`, `kprobe`, …); `unknown`
    /// when the input did not say (rawcover).
    public var backend: String
    /// What one recorded entry stands for.
    public var unit: Unit
    /// PC or CMP mode.
    public var mode: CoverageMode
    /// For ``Unit/syntheticBlock`` only (required there): which encoding the synthetic PCs use.
    public var pcFormat: PCFormat?
    /// The traced command and its arguments, when one command was traced.
    public var command: [String]?
    /// How the traced command ended.
    public var exit: Exit?
    /// The coverage buffer's size in 64-bit words, count word included.
    public var bufferWords: Int?
    /// For ``Unit/function`` only: every function that had a probe, the report's denominator.
    /// `nil` only for files of kcovctl versions that did not record them (such a file cannot be
    /// reported against a kernel).
    public var probedFunctions: [ProbedFunction]?
    /// For ``Unit/function`` only: functions that were asked for but could not be probed, with why.
    public var skippedFunctions: [SkippedFunction]
    /// One entry per traced thread or process (per image of it, in a whole run); `kcovctl trace` writes one.
    public var tasks: [Task]
    /// Whole runs (version 2): threads and processes that were not traced, each with the reason.
    public var untraced: [UntracedTask]
    /// Version 3: where the kernel's text and modules were when the trace ended, for mapping
    /// module PCs (Docs/modules.md); `nil` when the backend did not say.
    public var kernel: KernelLayout?

    public init(
        backend: String, unit: Unit, mode: CoverageMode, pcFormat: PCFormat? = nil, command: [String]? = nil, exit: Exit? = nil,
        bufferWords: Int? = nil, probedFunctions: [ProbedFunction]? = nil, skippedFunctions: [SkippedFunction] = [], tasks: [Task],
        untraced: [UntracedTask] = [], kernel: KernelLayout? = nil
    ) {
        self.kernel = kernel
        self.backend = backend
        self.unit = unit
        self.mode = mode
        self.pcFormat = pcFormat
        self.command = command
        self.exit = exit
        self.bufferWords = bufferWords
        self.probedFunctions = probedFunctions
        self.skippedFunctions = skippedFunctions
        self.tasks = tasks
        self.untraced = untraced
    }

    /// 3 with a ``kernel`` layout, else 2 when a version-2 field is used, else 1.
    public var writtenVersion: Int {
        if kernel != nil { return 3 }
        return untraced.isEmpty && tasks.allSatisfy { $0.end == nil && $0.endOrder == nil && $0.withoutAgent == nil && $0.agentTail == nil } ? 1 : 2
    }

    /// A thread or process a whole run saw but could not trace: `{"pid"?, "tid"?, "executable"?, "reason"}`.
    public struct UntracedTask: Sendable, Hashable {
        public var pid: Int32?
        public var tid: Int32?
        public var executable: String?
        /// Why, in words: "static executable (no dynamic loader, so no agent)", "KCOV_INIT_TRACE failed: …".
        public var reason: String

        public init(pid: Int32? = nil, tid: Int32? = nil, executable: String? = nil, reason: String) {
            self.pid = pid
            self.tid = tid
            self.executable = executable
            self.reason = reason
        }
    }

    /// How a task's record ended (version 2, whole runs; Docs/follow.md#what-each-task-record-says).
    public enum TaskEnd: String, Sendable, Hashable, CaseIterable {
        /// Its process called `exit` or `_exit` (the status is in ``Task/exit``), or returned from `main`.
        case exit
        /// A thread that ended on its own (returned, `pthread_exit`, cancelled).
        case threadExit
        /// The task called `execve`: the next image's record (same pid) goes on from here.
        case exec
        /// A thread whose process ended without it ending first (another thread's `exit`, an exec, a signal).
        case groupExit
        /// A process's task that ended without `exit` or `_exit`: killed by a signal, or crashed.
        case killed
        /// Still running when the run ended; its buffer was read as it was.
        case running
    }

    /// What one entry of the trace stands for: `pc`, `synthetic-block` or `function`.
    public typealias Unit = CoverageUnit

    /// Which encoding gVisor's synthetic PCs use (see GVisorBackend's `SyntheticPC`).
    public enum PCFormat: String, Sendable, Hashable, CaseIterable {
        case current, legacy
        /// No PCs, or a mix of both encodings.
        case unknown
    }

    /// How a traced command or task ended.
    public enum Exit: Sendable, Hashable {
        /// Exited with this status (`{"status": N}`).
        case status(Int32)
        /// Killed by this signal (`{"signal": N}`).
        case signal(Int32)
        /// Killed with SIGKILL when its timeout expired (`{"timedOut": true}`).
        case timedOut

        public init(_ exit: CommandExit) {
            switch exit {
            case .exited(let status): self = .status(status)
            case .signaled(let signal): self = .signal(signal)
            case .timedOut: self = .timedOut
            }
        }

        /// The same outcome in CoverageAPI's terms.
        public var commandExit: CommandExit {
            switch self {
            case .status(let status): .exited(status)
            case .signal(let signal): .signaled(signal)
            case .timedOut: .timedOut
            }
        }
    }

    /// A function that had a probe: `{"name", "pc"}`, `pc` its entry address.
    public typealias ProbedFunction = CoverageAPI.ProbedFunction
    /// A function that was asked for but has no probe: `{"name", "reason"}`.
    public typealias SkippedFunction = CoverageAPI.SkippedFunction
    /// A function a task entered: `{"name", "pc", "hits"}`, `hits` the times it was entered (≥ 1).
    public typealias FunctionEntry = FunctionHit

    /// What one thread or process recorded. Exactly one of ``pcs``, ``comparisons`` and
    /// ``functions`` is used, as the file's unit and mode say; the others stay empty.
    public struct Task: Sendable, Hashable {
        /// The process id (thread group id), when known.
        public var pid: Int32?
        /// The thread id, when known.
        public var tid: Int32?
        /// The parent's process id, when known.
        public var parentPid: Int32?
        /// The program the task ran, when known.
        public var executable: String?
        /// The task's place among the run's tasks by start, 0 first, when known.
        public var order: Int?
        /// How the task ended, when known.
        public var exit: Exit?
        /// The task's buffer filled up: entries were dropped, so its coverage is a lower bound.
        public var truncated: Bool
        /// Units pc and synthetic-block in PC mode: every entry in recorded order, repeats kept.
        public var pcs: [UInt64]
        /// CMP mode: every comparison record in recorded order.
        public var comparisons: [ComparisonRecord]
        /// Unit function: each function entered, once, with its hit count.
        public var functions: [FunctionEntry]
        /// Version 2: how the record ended.
        public var end: TaskEnd?
        /// Version 2: the record's place among the run's records by when its buffer was final, 0 first.
        public var endOrder: Int?
        /// Version 2: the image ran without the agent (its threads and children were not followed), and why.
        public var withoutAgent: String?
        /// Version 2: the entry (counted from this record's start) at which the agent had loaded in
        /// this image: the entries before it hold the exec, the loader's work — including mapping the
        /// agent library — and the agent's two mmap calls (Docs/follow.md#perturbation).
        public var agentTail: Int?

        public init(
            pid: Int32? = nil, tid: Int32? = nil, parentPid: Int32? = nil, executable: String? = nil, order: Int? = nil, exit: Exit? = nil,
            truncated: Bool = false, pcs: [UInt64] = [], comparisons: [ComparisonRecord] = [], functions: [FunctionEntry] = [],
            end: TaskEnd? = nil, endOrder: Int? = nil, withoutAgent: String? = nil, agentTail: Int? = nil
        ) {
            self.pid = pid
            self.tid = tid
            self.parentPid = parentPid
            self.executable = executable
            self.order = order
            self.exit = exit
            self.truncated = truncated
            self.pcs = pcs
            self.comparisons = comparisons
            self.functions = functions
            self.end = end
            self.endOrder = endOrder
            self.withoutAgent = withoutAgent
            self.agentTail = agentTail
        }

        /// A task holding `trace`'s entries: its PCs (PC mode) or comparison records (CMP mode).
        public init(_ trace: Trace, pid: Int32? = nil, tid: Int32? = nil, exit: Exit? = nil) {
            self.init(
                pid: pid, tid: tid, exit: exit, truncated: trace.truncated, pcs: trace.mode == .pc ? trace.pcs : [],
                comparisons: trace.mode == .comparisons ? trace.comparisons : [])
        }

        /// Entries the task recorded: PCs, comparison records or functions entered.
        public var entryCount: Int { pcs.count + comparisons.count + functions.count }

        /// The task's PCs in recorded order: the PCs, the comparison sites, or each entered function's address.
        public var entryPCs: [UInt64] {
            if !comparisons.isEmpty { return comparisons.map(\.pc) }
            if !functions.isEmpty { return functions.map(\.pc) }
            return pcs
        }
    }
}

// MARK: - From CoverageAPI

extension TraceFile {
    /// One task holding `trace`: unit pc or synthetic-block by the trace's PC kind. A synthetic
    /// trace without `pcFormat` is written as format `unknown`.
    public init(
        backend: String, trace: Trace, pcFormat: PCFormat? = nil, command: [String]? = nil, exit: CommandExit? = nil, bufferWords: Int? = nil
    ) {
        let unit = Unit(pcKind: trace.pcKind, granularity: .basicBlock)
        self.init(
            backend: backend, unit: unit, mode: trace.mode, pcFormat: unit == .syntheticBlock ? pcFormat ?? .unknown : nil, command: command,
            exit: exit.map(Exit.init), bufferWords: bufferWords, tasks: [Task(trace)])
    }

    /// One task of function-level coverage (unit function, PC mode): the functions entered with
    /// their hits, against every function probed and those skipped.
    public init(
        backend: String, functions: [FunctionEntry], probedFunctions: [ProbedFunction], skippedFunctions: [SkippedFunction] = [],
        command: [String]? = nil, exit: CommandExit? = nil, truncated: Bool = false
    ) {
        self.init(
            backend: backend, unit: .function, mode: .pc, command: command, exit: exit.map(Exit.init), probedFunctions: probedFunctions,
            skippedFunctions: skippedFunctions, tasks: [Task(truncated: truncated, functions: functions)])
    }
}

// MARK: - The merged view

extension TraceFile {
    /// Some task's buffer filled up: the trace's coverage is a lower bound.
    public var isTruncated: Bool { tasks.contains { $0.truncated } }

    /// Entries over all tasks: PCs, comparison records, or function entries (one per function per task).
    public var entryCount: Int { tasks.reduce(0) { $0 + $1.entryCount } }

    /// Every task's PCs, task after task, repeats kept: the recorded PCs (PC mode), the comparison
    /// sites (CMP mode), or each entered function's address once per task (unit function).
    public var pcs: [UInt64] {
        if tasks.count == 1 { return tasks[0].entryPCs }
        var pcs: [UInt64] = []
        pcs.reserveCapacity(entryCount)
        for task in tasks { pcs.append(contentsOf: task.entryPCs) }
        return pcs
    }

    /// Every task's comparison records, task after task (CMP mode).
    public var comparisons: [ComparisonRecord] { tasks.count == 1 ? tasks[0].comparisons : tasks.flatMap(\.comparisons) }

    /// Distinct PCs over all tasks (of ``pcs``).
    public var uniquePCCount: Int { Set(pcs).count }

    /// Comparison records with a compile-time constant operand, over all tasks.
    public var constantComparisonCount: Int { tasks.reduce(0) { $0 + $1.comparisons.reduce(0) { $0 + ($1.isConstant ? 1 : 0) } } }

    /// Unit function: every function entered by any task, once, in the order first seen, with
    /// its hits summed over the tasks (saturating at `UInt64.max`).
    public var functions: [FunctionEntry] {
        var merged: [FunctionEntry] = []
        var index: [UInt64: Int] = [:]
        for function in tasks.lazy.flatMap(\.functions) {
            if let at = index[function.pc] {
                let (sum, overflow) = merged[at].hits.addingReportingOverflow(function.hits)
                merged[at].hits = overflow ? .max : sum
            } else {
                index[function.pc] = merged.count
                merged.append(function)
            }
        }
        return merged
    }

    /// Unit function: hits by function address, summed over the tasks (saturating).
    public var hitsByPC: [UInt64: UInt64] { Dictionary(functions.map { ($0.pc, $0.hits) }, uniquingKeysWith: { first, _ in first }) }

    /// The whole file as one ``Trace``: every task's entries (see ``pcs`` and ``comparisons``),
    /// truncated when any task is.
    public var mergedTrace: Trace {
        if unit == .function {
            var trace = Trace(backend: backend, functions: functions)
            trace.truncated = isTruncated
            return trace
        }
        return Trace(
            backend: backend, unit: unit, mode: mode, pcs: mode == .pc ? pcs : [], comparisons: mode == .comparisons ? comparisons : [],
            truncated: isTruncated)
    }

    /// One task's entries as a ``Trace`` (unit function: each entered function's address once).
    public func trace(of task: Task) -> Trace {
        if unit == .function {
            var trace = Trace(backend: backend, functions: task.functions)
            trace.truncated = task.truncated
            return trace
        }
        return Trace(
            backend: backend, unit: unit, mode: mode, pcs: mode == .pc ? task.entryPCs : [], comparisons: mode == .comparisons ? task.comparisons : [],
            truncated: task.truncated)
    }
}
