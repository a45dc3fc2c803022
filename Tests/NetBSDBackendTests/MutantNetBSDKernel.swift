import Conformance
import CoverageAPI
import KernelSeam
import NetBSDBackend
import NetBSDConformance
import ReferenceModels
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The NetBSD model with one defect, to show the NetBSD checks can fail. Every call goes to the
/// model; the defect changes one behaviour, in the wrapper (the model has no hooks for them).
///
/// Four defects are panics in a real kernel (a use after free or a double free on an exit or
/// LWP-free path, the crashes NetBSD's "no panic" test cases exist for). A model cannot panic and
/// let the tests go on, so the wrapper plays the panic as a kernel that is dead from then on:
/// every later open, ioctl, mmap and dup2 fails with EIO. That is what those checks look at after
/// the misuse (`deviceStillWorks`).
final class MutantNetBSDKernel: KernelInterface, NetBSDProcessInterface, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        /// close frees the buffer while it is still mapped: its pages read as zero afterwards.
        case closeFreesMappedBuffer
        /// DISABLE succeeds whatever the state (not enabled, or not by this LWP).
        case disableAlwaysSucceeds
        /// The probe syscall records nothing, in any mode.
        case probeRecordsNothing
        /// ENABLE never fails (a second fd on the same LWP, an fd already enabled).
        case secondEnableAllowed
        /// dup2 of a kcov fd is refused (EOPNOTSUPP), as for a cloned file that cannot be shared.
        case dup2Refused
        /// One instance at a time: open fails with EBUSY while another kcov fd is open.
        case exclusiveOpen
        /// close does not release the device: every open after a close fails with EBUSY.
        case reopenAfterCloseFails
        /// SETBUFSIZE of fewer than 2 entries (0 included) succeeds instead of EINVAL.
        case acceptsEmptyBuffer
        /// mmap before SETBUFSIZE fails with EINVAL instead of ENOMEM.
        case mapWithoutBufferIsEINVAL
        /// The process exiting with a buffer still mapped panics (the buffer is freed twice).
        case panicsAtExitWithMapping
        /// The process exiting with a descriptor still enabled panics.
        case panicsAtExitWhileEnabled
        /// Freeing an LWP whose descriptor was closed while enabled panics (close freed it already).
        case panicsFreeingDescriptorClosedWhileEnabled
        /// TRACE_CMP records nothing (a kernel built without `-fsanitize-coverage=trace-cmp`).
        case cmpRecordsNothing
        /// Every close runs the driver's close, even when a dup'd fd still refers to the file: the
        /// other fds are left with a closed descriptor (ENXIO).
        case closeIgnoresDuplicates
        /// Starting an LWP silently does nothing: the body never runs, the join returns at once.
        case lwpBodyNeverRuns
        /// An LWP without a binding has its syscalls recorded into every PC-enabled buffer.
        case recordsOtherLWPs
        /// LWPs made with `_lwp_create` record nothing of their own: only the process's first LWP
        /// is traced (the hooks find the descriptor through the process, not `curlwp`).
        case newLWPsRecordNothing
    }

    typealias Request = NetBSDKcovModel.Request

    let model = NetBSDKcovModel()
    let defect: Defect

    /// What the wrapper tracks of the model's state, to know when its defect applies.
    private struct State {
        /// Open fds (from open and dup2).
        var open: Set<CInt> = []
        /// Some fd has been closed.
        var everClosed = false
        /// SETBUFSIZE's entries per fd.
        var entries: [CInt: Int] = [:]
        /// Live mappings by address: their fd (-1 once it is closed) and length.
        var mappings: [UInt: (fd: CInt, bytes: Int)] = [:]
        /// Per LWP: the fd it enabled and the mode, until it disables or is freed.
        var bindings: [CInt: (fd: CInt, mode: Int32)] = [:]
        /// LWPs started with `startLWP` whose body is running.
        var lwps: Set<CInt> = []
        /// dup2 groups: fds sharing one file.
        var groups: [CInt: Int] = [:]
        var nextGroup = 0
        /// Groups whose descriptor the `closeIgnoresDuplicates` close has run on.
        var closedGroups: Set<Int> = []
        /// LWPs whose enabled descriptor was closed while enabled.
        var closedWhileEnabled: Set<CInt> = []
        /// The kernel has (in effect) panicked.
        var panicked = false

        /// A live mapping of `fd` with the entries it may hold.
        func buffer(of fd: CInt) -> (address: UInt, entries: Int)? {
            guard fd >= 0, let entries = entries[fd],
                  let mapping = mappings.first(where: { $0.value.fd == fd }) else { return nil }
            return (mapping.key, min(entries, mapping.value.bytes / 8))
        }
    }

    private let state = Mutex(State())

    init(_ defect: Defect) { self.defect = defect }

    private var thread: CInt { SystemKernel().currentThreadID() }

    private func fail(_ code: CInt) -> CInt {
        errno = code
        return -1
    }

    private static func slots(_ address: UInt) -> UnsafeMutablePointer<Atomic<UInt64>> {
        UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// `__sanitizer_cov_trace_pc` into a buffer of `entries` entries.
    private static func record(_ pcs: [UInt64], into buffer: (address: UInt, entries: Int)) {
        let slots = slots(buffer.address)
        for pc in pcs {
            let index = slots[0].load(ordering: .relaxed)
            guard index < UInt64(buffer.entries - 1) else { return }
            slots[Int(index) + 1].store(pc, ordering: .relaxed)
            slots[0].store(index + 1, ordering: .relaxed)
        }
    }

    /// Runs one syscall of the calling LWP. Where the defect says this LWP records nothing, its
    /// buffer's count is put back afterwards.
    private func syscall<T>(_ body: () -> T) -> T {
        let caller = thread
        let frozen = state.withLock { state -> (address: UInt, count: UInt64)? in
            guard let binding = state.bindings[caller] else { return nil }
            let silent = switch defect {
            case .cmpRecordsNothing: binding.mode == NetBSDKcovABI.modeTraceCMP
            case .newLWPsRecordNothing: state.lwps.contains(caller)
            default: false
            }
            guard silent, let buffer = state.buffer(of: binding.fd) else { return nil }
            return (buffer.address, Self.slots(buffer.address)[0].load(ordering: .relaxed))
        }
        let result = body()
        if let frozen { Self.slots(frozen.address)[0].store(frozen.count, ordering: .relaxed) }
        return result
    }

    private var panicked: Bool { state.withLock { $0.panicked } }

    // MARK: KernelInterface

    func open(_ path: String, flags: CInt) -> CInt {
        let refusal = state.withLock { state -> CInt? in
            if state.panicked { return EIO }
            if defect == .exclusiveOpen, !state.open.isEmpty { return EBUSY }
            if defect == .reopenAfterCloseFails, state.everClosed { return EBUSY }
            return nil
        }
        if let refusal { return fail(refusal) }
        let fd = syscall { model.open(path, flags: flags) }
        if fd >= 0 { state.withLock { _ = $0.open.insert(fd) } }
        return fd
    }

    func close(_ fd: CInt) -> CInt {
        let result = syscall { model.close(fd) }
        guard result == 0 else { return result }
        state.withLock { state in
            state.open.remove(fd)
            state.everClosed = true
            state.entries[fd] = nil
            let group = state.groups.removeValue(forKey: fd)
            let shared = group.map { group in state.groups.values.contains(group) } ?? false
            if defect == .closeIgnoresDuplicates, shared, let group { state.closedGroups.insert(group) }
            guard !shared else { return }
            for (address, mapping) in state.mappings where mapping.fd == fd {
                if defect == .closeFreesMappedBuffer, let pointer = UnsafeMutableRawPointer(bitPattern: address) {
                    pointer.initializeMemory(as: UInt8.self, repeating: 0, count: mapping.bytes)
                }
                state.mappings[address] = (-1, mapping.bytes)
            }
            for (tid, binding) in state.bindings where binding.fd == fd {
                state.closedWhileEnabled.insert(tid)
                state.bindings[tid] = (-1, binding.mode)
            }
        }
        return 0
    }

    /// Why an ioctl or mmap on `fd` is refused before the model sees it, if the defect says so.
    private func refusal(_ fd: CInt) -> CInt? {
        state.withLock { state in
            if state.panicked { return EIO }
            if let group = state.groups[fd], state.closedGroups.contains(group) { return ENXIO }
            return nil
        }
    }

    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        if let refusal = refusal(fd) { return fail(refusal) }
        let caller = thread
        let result = syscall { model.ioctl(fd, request, value: value) }
        if result == 0, request == Request.disable {
            state.withLock { state in
                if state.bindings[caller]?.fd == fd { state.bindings[caller] = nil }
            }
        }
        if defect == .disableAlwaysSucceeds, request == NetBSDKcovABI.disable { return 0 }
        return result
    }

    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        if let refusal = refusal(fd) { return fail(refusal) }
        let caller = thread
        let result = syscall { model.ioctl(fd, request, pointer: pointer) }
        let code = errno
        switch request {
        case Request.setBufferSize:
            let entries = pointer.load(as: UInt64.self)
            if result == 0 {
                state.withLock { $0.entries[fd] = Int(entries) }
            } else if defect == .acceptsEmptyBuffer, code == EINVAL, entries < 2 {
                return 0
            }
        case Request.enable:
            let mode = pointer.load(as: Int32.self)
            if result == 0 { state.withLock { $0.bindings[caller] = (fd, mode) } }
            if defect == .secondEnableAllowed, result != 0 { return 0 }
        default:
            break
        }
        errno = code
        return result
    }

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        if let refusal = refusal(fd) {
            errno = refusal
            return nil
        }
        guard let address = syscall({ model.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset) }) else {
            let code = errno
            let sized = state.withLock { $0.entries[fd] != nil }
            errno = defect == .mapWithoutBufferIsEINVAL && code == ENOMEM && !sized ? EINVAL : code
            return nil
        }
        state.withLock { $0.mappings[UInt(bitPattern: address)] = (fd, length) }
        return address
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let result = syscall { model.munmap(address, length: length) }
        if result == 0 { state.withLock { _ = $0.mappings.removeValue(forKey: UInt(bitPattern: address)) } }
        return result
    }

    func currentThreadID() -> CInt { syscall { model.currentThreadID() } }

    func probeSyscall() {
        if defect == .probeRecordsNothing || panicked { return }
        let caller = thread
        syscall { model.probeSyscall() }
        guard defect == .recordsOtherLWPs else { return }
        let code = errno
        let others = state.withLock { state -> [(address: UInt, entries: Int)] in
            guard state.bindings[caller] == nil else { return [] }
            return state.bindings.values.filter { $0.mode == NetBSDKcovABI.modeTracePC }.compactMap { state.buffer(of: $0.fd) }
        }
        for buffer in others { Self.record(NetBSDKcovModel.probePCs, into: buffer) }
        errno = code
    }

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
    func waitForExit(_ pid: CInt) -> KernelSeam.ExitStatus { model.waitForExit(pid) }
    func readTextFile(_ path: String) -> String? { syscall { model.readTextFile(path) } }

    // MARK: NetBSDProcessInterface

    func dup2(_ fd: CInt, _ target: CInt) -> CInt {
        if panicked { return fail(EIO) }
        if defect == .dup2Refused { return fail(EOPNOTSUPP) }
        let result = syscall { model.dup2(fd, target) }
        guard result >= 0 else { return result }
        state.withLock { state in
            state.open.insert(result)
            let group = state.groups[fd] ?? state.nextGroup
            if state.groups[fd] == nil { state.nextGroup += 1 }
            state.groups[fd] = group
            state.groups[result] = group
        }
        return result
    }

    func startLWP(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        if defect == .lwpBodyNeverRuns { return {} }
        let lwp = Atomic<CInt>(0)
        let creator = thread
        let join = model.startLWP { [self] in
            let tid = thread
            lwp.store(tid, ordering: .releasing)
            state.withLock { _ = $0.lwps.insert(tid) }
            if defect == .recordsOtherLWPs { awaitEmptyBuffer(of: creator) }
            body()
            state.withLock { _ = $0.lwps.remove(tid) }
        }
        return { [self] in
            join()
            // The LWP is freed: its binding goes, and a descriptor closed while enabled with it.
            let tid = lwp.load(ordering: .acquiring)
            state.withLock { state in
                state.bindings[tid] = nil
                if state.closedWhileEnabled.remove(tid) != nil, defect == .panicsFreeingDescriptorClosedWhileEnabled {
                    state.panicked = true
                }
            }
        }
    }

    /// Holds a new LWP until its creator, tracing, has emptied its buffer (at most 2 s): a legal
    /// schedule, forced so that `recordsOtherLWPs` is caught every time. `netbsd.kcov_thread`
    /// resets `buf[0]` on the tracing thread after starting the other one, so a schedule that runs
    /// the other thread's syscalls first hides any leak from it (seen 15 times in 400 unforced
    /// runs); NetBSD's `thread_test_helper` resets on the other thread, before its syscall.
    private func awaitEmptyBuffer(of creator: CInt) {
        guard let buffer = state.withLock({ state in state.bindings[creator].flatMap { state.buffer(of: $0.fd) } }) else { return }
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while Self.slots(buffer.address)[0].load(ordering: .relaxed) != 0 {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if now.tv_sec - start.tv_sec >= 2 { return }
            sched_yield()
        }
    }

    func simulateProcessExit() -> Bool {
        let exited = model.simulateProcessExit()
        state.withLock { state in
            let panics = switch defect {
            case .panicsAtExitWithMapping: !state.mappings.isEmpty
            case .panicsAtExitWhileEnabled: !state.bindings.isEmpty
            case .panicsFreeingDescriptorClosedWhileEnabled: !state.closedWhileEnabled.isEmpty
            default: false
            }
            state = State()
            state.panicked = panics
        }
        return exited
    }
}

@Suite struct NetBSDChecksCanFailTests {
    @Test(arguments: [
        (MutantNetBSDKernel.Defect.disableAlwaysSucceeds, "netbsd.kcov_enable"),
        (.probeRecordsNothing, "netbsd.kcov_basic_pc"),
        (.secondEnableAllowed, "netbsd.kcov_multienable_on_the_same_thread"),
    ])
    func aDefectFailsItsCheck(_ defect: MutantNetBSDKernel.Defect, _ id: String) {
        let check = NetBSDChecks.all.first { $0.id == id }!
        let result = ConformanceSuite.run(on: NetBSDKcovBackend(kernel: MutantNetBSDKernel(defect)), checks: [check])
        #expect(result.first?.status == .fail, "\(id) passed on a kernel with \(defect)")
    }
}
