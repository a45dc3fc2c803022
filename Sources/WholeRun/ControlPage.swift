import CKcovFollowProtocol
import CoverageAPI
import KernelSeam

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The collector's read-only view of a process's control page (`struct kfp_control`, written by
/// the agent without syscalls; Docs/follow.md#mechanism-an-agent-the-loader-injects-a-collector-that-holds-every-fd).
struct ControlPage {
    let base: UnsafeRawPointer?

    init(_ base: UnsafeMutableRawPointer?) { self.base = base.map(UnsafeRawPointer.init) }

    /// One event, decoded.
    struct Event {
        var tid: Int32
        var kind: Int32
        var position: UInt64
        var path: String
    }

    private var header: kfp_control? {
        guard let base, base.load(as: UInt32.self) == KFP_CONTROL_MAGIC else { return nil }
        return base.load(as: kfp_control.self)
    }

    /// The command's page was never claimed: its image did not load the agent.
    var isUnclaimed: Bool { header?.pid == KFP_PID_UNCLAIMED }

    /// Events written, including any that did not fit.
    var eventCount: Int { header.map { Int($0.event_count) } ?? 0 }

    /// 0 none, 1 exit, 2 _exit (`kfp_exit_kind`).
    var exitKind: Int32 { header?.exit_kind ?? 0 }

    /// The status the process passed to exit or _exit.
    var exitStatus: Int32? { exitKind == 0 ? nil : header?.exit_status }

    /// The events that fit the page, in the order they were written.
    var events: [Event] {
        guard let base, header != nil else { return [] }
        let offset = MemoryLayout<kfp_control>.offset(of: \kfp_control.events) ?? 0
        let stride = MemoryLayout<kfp_event>.stride
        var events: [Event] = []
        for index in 0..<min(eventCount, Int(KFP_CONTROL_EVENTS)) {
            let event = base.load(fromByteOffset: offset + index * stride, as: kfp_event.self)
            guard event.kind != 0 else { continue }
            let path = withUnsafeBytes(of: event.path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            events.append(Event(tid: event.tid, kind: event.kind, position: event.position, path: path))
        }
        return events
    }

    /// Task `tid` exec'd and so became the process's main task (`pid`).
    func execTid(_ tid: Int32, becomes pid: Int32) -> Bool {
        segments(of: TaskEntry(tid: tid, fd: -1, order: 0, executable: ""), pid: pid, entries: 0).last?.tid == pid
    }

    /// One image's part of a task's buffer.
    struct Segment {
        var tid: Int32
        var range: Range<Int>
        var executable: String
        var withoutAgent: String?
        var agentTail: Int?
    }

    /// Splits a task's `entries` at its execs: an EXECING event of the task ends one image where
    /// the buffer stood; the image after it is the next LOADED one's, or — when none followed — an
    /// image that ran without the agent.
    func segments(of task: TaskEntry, pid: Int32, entries: Int) -> [Segment] {
        var segments: [Segment] = []
        var current = Segment(tid: task.tid, range: 0..<entries, executable: task.executable)
        var pending: Event?
        func clamp(_ position: UInt64) -> Int { position >= UInt64(entries) ? entries : Int(position) }
        func split(at position: UInt64, into next: Segment) {
            let cut = max(current.range.lowerBound, clamp(position))
            current.range = current.range.lowerBound..<cut
            segments.append(current)
            current = next
            current.range = cut..<entries
        }
        for event in events {
            switch event.kind {
            case Int32(KFP_EVENT_EXECING.rawValue) where event.tid == current.tid:
                if let pending { split(at: pending.position, into: withoutAgentSegment(pid: pid, path: pending.path)) }
                pending = event
            case Int32(KFP_EVENT_EXEC_FAILED.rawValue) where event.tid == current.tid:
                pending = nil
            case Int32(KFP_EVENT_LOADED.rawValue) where pending == nil && event.tid == pid && segments.isEmpty && current.range.lowerBound == 0:
                // The collector's command: traced from its exec, the agent loaded at `position`.
                current.executable = event.path
                current.agentTail = event.position == UInt64.max ? nil : Int(clamping: event.position)
            case Int32(KFP_EVENT_LOADED.rawValue) where pending != nil && event.tid == pid:
                let start = pending?.position ?? 0
                let tail = event.position == UInt64.max || event.position < start ? nil : Int(clamping: event.position - start)
                split(at: start, into: Segment(tid: pid, range: 0..<0, executable: event.path, agentTail: tail))
                pending = nil
            default: break
            }
        }
        if let pending { split(at: pending.position, into: withoutAgentSegment(pid: pid, path: pending.path)) }
        segments.append(current)
        return segments
    }

    private func withoutAgentSegment(pid: Int32, path: String) -> Segment {
        let resolved = ImageCheck.resolve(path)
        return Segment(tid: pid, range: 0..<0, executable: resolved, withoutAgent: ImageCheck.whyWithoutAgent(resolved))
    }
}

/// A control page the collector makes for the command it starts (read-write, not close-on-exec).
struct OwnedControlPage {
    let fd: Int32
    let base: UnsafeMutableRawPointer

    /// The page is unclaimed, the command's kcov fd `keptFD` named as an exec's.
    func prepareForCommand(keptFD: Int32) {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Int(KFP_CONTROL_BYTES))
        var header = kfp_control()
        header.magic = KFP_CONTROL_MAGIC
        header.version = UInt32(KFP_CONTROL_VERSION)
        header.pid = KFP_PID_UNCLAIMED
        header.exec_tid = KFP_PID_UNCLAIMED
        header.exec_fd = keptFD
        base.storeBytes(of: header, as: kfp_control.self)
    }

    func release() {
        munmap(base, Int(KFP_CONTROL_BYTES))
        close(fd)
    }
}

extension ControlPage {
    /// A new page for the command, or `.system` when memfd_create, ftruncate or mmap fails.
    static func create() throws(CoverageError) -> OwnedControlPage {
        let fd = kfp_control_file()
        guard fd >= 0 else { throw CoverageError.system("memfd_create", errno: errno) }
        guard let base = mmap(nil, Int(KFP_CONTROL_BYTES), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), base != MAP_FAILED else {
            let code = errno
            close(fd)
            throw CoverageError.system("mmap", errno: code)
        }
        return OwnedControlPage(fd: fd, base: base)
    }
}

/// Why an image ran without the agent, from the file itself.
enum ImageCheck {
    /// `name` as execvp finds it: itself when it holds a `/`, else the first executable on PATH.
    static func resolve(_ name: String) -> String {
        guard !name.contains("/") else { return name }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where access("\(directory)/\(name)", X_OK) == 0 {
            return "\(directory)/\(name)"
        }
        return name
    }

    /// "static executable …", "set-user-ID program …", or the remaining causes.
    static func whyWithoutAgent(_ path: String) -> String {
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_ISUID != 0, info.st_uid != getuid() {
            return "set-user-ID program: the loader ignores LD_PRELOAD for it, so the agent did not follow its threads and children"
        }
        switch hasInterpreter(path) {
        case false?:
            return "static executable: no dynamic loader, so no agent; its threads and child processes were not followed"
        default:
            return "the agent did not start in it (LD_PRELOAD removed from its environment, or it closed the agent's descriptors): its threads and children were not followed"
        }
    }

    /// Whether the ELF file at `path` names a program interpreter (PT_INTERP); `nil` when it is
    /// not a readable 64-bit ELF file.
    static func hasInterpreter(_ path: String) -> Bool? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 64)
        guard pread(fd, &header, 64, 0) == 64, header[0..<4] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2 else { return nil }
        func little(_ bytes: ArraySlice<UInt8>) -> UInt64 { bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let offset = little(header[32..<40])
        let entrySize = Int(little(header[54..<56]))
        let count = Int(little(header[56..<58]))
        guard entrySize >= 4, count <= 4096, offset < UInt64(Int.max) else { return nil }
        var entry = [UInt8](repeating: 0, count: entrySize)
        for index in 0..<count {
            let (at, overflow) = Int(offset).addingReportingOverflow(index * entrySize)
            guard !overflow, pread(fd, &entry, entrySize, off_t(at)) == entrySize else { return nil }
            if little(entry[0..<4]) == 3 { return true }
        }
        return false
    }
}
