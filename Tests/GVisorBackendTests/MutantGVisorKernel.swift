import CoverageAPI
import GVisorBackend
import KernelSeam
import LinuxBackend
import ReferenceModels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The gVisor model with one deliberate defect: every call goes to the model, and the defect
/// changes one behaviour in the wrapper (the model has no hooks for them), the way a buggy
/// sentry would. Where a defect writes coverage the model would not, the wrapper writes the
/// synthetic PCs of the blocks the call runs in the model into a client mapping of the buffer.
final class MutantGVisorKernel: KernelInterface, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        /// INIT_TRACE rounds a size that is not whole pages up to whole pages instead of refusing it.
        case roundsSizeUpToWholePages
        /// mmap of any length but the buffer's fails with EINVAL (Linux's rule).
        case refusesOtherMapLengths
        /// mmap while enabled succeeds, handing out the mapping the buffer already has.
        case mapsWhileEnabled
        /// DISABLE leaves the fd with a buffer, so ENABLE works again without a new mmap (Linux's rule).
        case disableKeepsBuffer
        /// ENABLE allocates the buffer itself when the fd was never mapped.
        case enableAllocatesBuffer
        /// A return to user space writes the coverage into every buffer the thread enabled, not
        /// only the first: coverage is copied, not taken.
        case copiesCoverageToEveryInstance
        /// One PC per execution of a block, not per block that ran: the return path's loop head
        /// (`(*runApp).execute`, back to the application) runs twice and is written twice.
        case writesEveryExecution
        /// Task work runs on whichever thread returns to user space: another thread's syscall is
        /// written into every tracing buffer at that thread's return, while the owner is still in
        /// user space.
        case writesAtAnyThreadsReturn
        /// close of an enabled fd leaves its thread collecting into the mapped buffer (Linux's
        /// and NetBSD's rule).
        case closeKeepsCollecting
    }

    typealias Model = GVisorKcovModel
    typealias Request = GVisorKcovModel.Request

    let model = GVisorKcovModel()
    let defect: Defect

    /// A client mapping of a buffer: where it is, and how many words of it may be touched.
    private struct View {
        var address: UInt
        var words: Int
    }

    /// What the wrapper tracks of the model's state, to know when its defect applies.
    private struct State {
        /// INIT_TRACE's size per fd.
        var sizeWords: [CInt: Int] = [:]
        /// Per fd, the live client mappings of its current buffer (address → bytes); a DISABLE
        /// disconnects them.
        var current: [CInt: [UInt: Int]] = [:]
        /// Every live client mapping's fd.
        var mapped: [UInt: CInt] = [:]
        /// The thread that enabled each fd.
        var owner: [CInt: CInt] = [:]
        /// Mappings the wrapper made itself, unmapped when the fd closes.
        var own: [CInt: [(address: UInt, bytes: Int)]] = [:]
        /// Extra references the `mapsWhileEnabled` mmap handed out on an existing mapping.
        var aliases: [UInt: Int] = [:]
        /// Per thread, the buffers of enabled fds it closed (`closeKeepsCollecting`).
        var orphans: [CInt: [View]] = [:]

        /// The largest live client mapping of `fd`'s current buffer, as far as the buffer reaches.
        func view(_ fd: CInt) -> View? {
            guard let words = sizeWords[fd], let largest = current[fd]?.max(by: { $0.value < $1.value }) else { return nil }
            return View(address: largest.key, words: min(words, largest.value / 8))
        }
    }

    private let state = Mutex(State())

    init(_ defect: Defect) {
        self.defect = defect
    }

    private var thread: CInt { SystemKernel().currentThreadID() }

    private static func slots(_ address: UInt) -> UnsafeMutablePointer<Atomic<UInt64>> {
        UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// `ConsumeCoverageData` into a buffer: after the count, up to the end, then the new count.
    private static func consume(_ pcs: [UInt64], into view: View) {
        let slots = slots(view.address)
        let count = slots[0].load(ordering: .relaxed)
        var written: UInt64 = 0
        for pc in pcs {
            let index = count + 1 + written
            guard index < UInt64(view.words) else { break }
            slots[Int(index)].store(pc, ordering: .relaxed)
            written += 1
        }
        slots[0].store(count + written, ordering: .relaxed)
    }

    /// The PCs of a buffer from word `from + 1` to its count.
    private static func entries(of view: View, after from: UInt64) -> [UInt64] {
        let slots = slots(view.address)
        let count = min(slots[0].load(ordering: .relaxed), UInt64(view.words - 1))
        guard count > from else { return [] }
        return (Int(from) + 1...Int(count)).map { slots[$0].load(ordering: .relaxed) }
    }

    /// The return path's loop head: `(*runApp).execute`, back to the application.
    private static let returnToUserPC = Model.probeBlocks.first { $0.location.hasSuffix("back to the application") }!.syntheticPC

    /// One syscall of the calling thread that runs `blocks` in the model, with what the defect
    /// does around it.
    private func syscall<T>(_ blocks: [Model.CoverageBlock], _ body: () -> T) -> T {
        let caller = thread
        let before = state.withLock { state in
            state.owner.filter { $0.value == caller }.keys.compactMap { fd in
                state.view(fd).map { (fd: fd, view: $0, count: Self.slots($0.address)[0].load(ordering: .relaxed)) }
            }
        }
        let result = body()
        let code = errno
        defer { errno = code }
        switch defect {
        case .copiesCoverageToEveryInstance:
            for written in before {
                let pcs = Self.entries(of: written.view, after: written.count)
                guard !pcs.isEmpty else { continue }
                for other in before where other.fd != written.fd { Self.consume(pcs, into: other.view) }
            }
        case .writesEveryExecution:
            for written in before where Self.entries(of: written.view, after: written.count).contains(Self.returnToUserPC) {
                Self.consume([Self.returnToUserPC], into: written.view)
            }
        case .writesAtAnyThreadsReturn:
            let tracing = state.withLock { state in
                state.owner.values.contains(caller) ? [] : state.owner.keys.compactMap { state.view($0) }
            }
            for view in tracing { Self.consume(Model.window(blocks), into: view) }
        case .closeKeepsCollecting:
            for view in state.withLock({ $0.orphans[caller] ?? [] }) { Self.consume(Model.window(blocks), into: view) }
        default:
            break
        }
        return result
    }

    /// An mmap of the whole buffer the client does not know about; errno is left alone.
    private func mapForTheWrapper(_ fd: CInt) {
        let code = errno
        defer { errno = code }
        guard let words = state.withLock({ $0.sizeWords[fd] }),
              let address = model.mmap(length: words * 8, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: 0)
        else { return }
        state.withLock { $0.own[fd, default: []].append((UInt(bitPattern: address), words * 8)) }
    }

    // MARK: KernelInterface

    func open(_ path: String, flags: CInt) -> CInt { syscall(Model.syscallBlocks) { model.open(path, flags: flags) } }

    func close(_ fd: CInt) -> CInt {
        let caller = thread
        let (owner, view) = state.withLock { ($0.owner[fd], $0.view(fd)) }
        let result = syscall(Model.syscallBlocks) { model.close(fd) }
        guard result == 0 else { return result }
        let own = state.withLock { state in
            if defect == .closeKeepsCollecting, owner == caller, let view { state.orphans[caller, default: []].append(view) }
            state.owner[fd] = nil
            state.sizeWords[fd] = nil
            state.current[fd] = nil
            return state.own.removeValue(forKey: fd) ?? []
        }
        for mapping in own { _ = model.munmap(UnsafeMutableRawPointer(bitPattern: mapping.address)!, length: mapping.bytes) }
        return 0
    }

    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        let caller = thread
        let request32 = UInt(UInt32(truncatingIfNeeded: request))
        var value = value
        switch (defect, request32) {
        case (.roundsSizeUpToWholePages, Request.initTrace) where (2...UInt(Model.maxWords)).contains(value) && value % 512 != 0:
            value = (value + 511) / 512 * 512
        case (.enableAllocatesBuffer, Request.enable):
            let unmapped = state.withLock { $0.sizeWords[fd] != nil && $0.owner[fd] == nil && ($0.current[fd] ?? [:]).isEmpty && $0.own[fd] == nil }
            if unmapped { mapForTheWrapper(fd) }
        default:
            break
        }
        let result = syscall(Model.ioctlEntryBlocks + Model.ioctlExitBlocks) { model.ioctl(fd, request, value: value) }
        guard result == 0 else { return result }
        state.withLock { state in
            switch request32 {
            case Request.initTrace: state.sizeWords[fd] = Int(value)
            case Request.enable: state.owner[fd] = caller
            case Request.disable:
                state.owner[fd] = nil
                state.current[fd] = nil  // the old mappings are disconnected
            default: break
            }
        }
        if defect == .disableKeepsBuffer, request32 == Request.disable { mapForTheWrapper(fd) }
        return 0
    }

    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        ioctl(fd, request, value: UInt(bitPattern: pointer))
    }

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        // The defect's answer: an existing mapping's address, or an errno.
        let answer = state.withLock { state -> (address: UInt?, errno: CInt)? in
            if defect == .mapsWhileEnabled, state.owner[fd] != nil,
               let existing = state.current[fd]?.first(where: { $0.value >= length })
            {
                state.aliases[existing.key, default: 0] += 1
                return (existing.key, 0)
            }
            if defect == .refusesOtherMapLengths, let words = state.sizeWords[fd], length != words * 8 {
                return (nil, EINVAL)
            }
            return nil
        }
        if let answer {
            if answer.address == nil { errno = answer.errno }
            return answer.address.flatMap { UnsafeMutableRawPointer(bitPattern: $0) }
        }
        guard let address = syscall(Model.syscallBlocks, { model.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset) })
        else { return nil }
        state.withLock { state in
            state.current[fd, default: [:]][UInt(bitPattern: address)] = length
            state.mapped[UInt(bitPattern: address)] = fd
        }
        return address
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        let aliased = state.withLock { state -> Bool in
            guard let count = state.aliases[key], count > 0 else { return false }
            state.aliases[key] = count == 1 ? nil : count - 1
            return true
        }
        if aliased { return 0 }
        // Nothing may be written into it once it is gone.
        state.withLock { state in
            for thread in state.orphans.keys { state.orphans[thread]!.removeAll { $0.address == key } }
        }
        let result = syscall(Model.syscallBlocks) { model.munmap(address, length: length) }
        if result == 0 {
            state.withLock { state in
                if let fd = state.mapped.removeValue(forKey: key) { state.current[fd]?[key] = nil }
            }
        }
        return result
    }

    func currentThreadID() -> CInt { syscall(Model.syscallBlocks) { model.currentThreadID() } }

    func probeSyscall() { syscall(Model.probeBlocks) { model.probeSyscall() } }

    func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        model.spawnEnabled(command, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
    }
    func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        model.forkEnabled(fd: fd, enable: enable, buffer: buffer, timeoutMilliseconds: timeoutMilliseconds, child: child)
    }

    func waitForExit(_ pid: CInt) -> ExitStatus { model.waitForExit(pid) }

    func readTextFile(_ path: String) -> String? { syscall(Model.syscallBlocks) { model.readTextFile(path) } }
}

/// The gVisor backend with one deliberate defect of its own. Comparison mode and remote coverage
/// are refused by the backend from its capabilities before any syscall, so no kernel defect can
/// reach the checks of those rules; these defects are a backend that asks the kernel instead.
struct MutantGVisorBackend: KcovDriver {
    enum Defect: String, CaseIterable, Sendable {
        /// enable(.comparisons) sends KCOV_ENABLE(KCOV_TRACE_CMP) and lets gVisor refuse it (EOPNOTSUPP).
        case asksKernelForComparisons
        /// enableRemote sends KCOV_REMOTE_ENABLE and lets gVisor refuse it (ENOTTY).
        case asksKernelForRemote
    }

    let real: GVisorKcovBackend
    let defect: Defect

    var name: String { real.name }
    var capabilities: BackendCapabilities { real.capabilities }
    func availability() -> Availability { real.availability() }
    func openDevice() throws(CoverageError) -> Int32 { try real.openDevice() }
    func closeDevice(_ fd: Int32) { real.closeDevice(fd) }
    func initialize(_ fd: Int32, words: Int) throws(CoverageError) { try real.initialize(fd, words: words) }
    func mapBuffer(_ fd: Int32, words: Int) throws(CoverageError) -> UnsafeMutableRawPointer { try real.mapBuffer(fd, words: words) }
    func unmapBuffer(_ address: UnsafeMutableRawPointer, words: Int) { real.unmapBuffer(address, words: words) }

    func enable(_ fd: Int32, mode: CoverageMode) throws(CoverageError) {
        if defect == .asksKernelForComparisons {
            try real.enable(fd, rawMode: LinuxKcovABI.modeArgument(mode))
        } else {
            try real.enable(fd, mode: mode)
        }
    }

    func enableRemote(_ fd: Int32, mode: CoverageMode, _ request: RemoteRequest) throws(CoverageError) {
        if defect == .asksKernelForRemote {
            try real.sendRemoteEnable(fd)
        } else {
            try real.enableRemote(fd, mode: mode, request)
        }
    }

    func disable(_ fd: Int32) throws(CoverageError) { try real.disable(fd) }
    func sendUndefinedRequest(_ fd: Int32) throws(CoverageError) { try real.sendUndefinedRequest(fd) }
    func currentThreadID() -> Int32 { real.currentThreadID() }
    func probe() { real.probe() }
    func runEnabled(_ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, command: Command) throws(CoverageError) -> CommandExit {
        try real.runEnabled(fd, mode: mode, buffer: buffer, words: words, command: command)
    }
    func runForked(
        _ fd: Int32, mode: CoverageMode, buffer: UnsafeMutableRawPointer, words: Int, timeout: Duration?, body: () -> Int32
    ) throws(CoverageError) -> ForkedChild {
        try real.runForked(fd, mode: mode, buffer: buffer, words: words, timeout: timeout, body: body)
    }
}
