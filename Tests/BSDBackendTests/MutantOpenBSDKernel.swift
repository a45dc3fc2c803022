import CoverageAPI
import KernelSeam
import OpenBSDBackend
import ReferenceModels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The OpenBSD model with one defect, to show each OpenBSD check can fail; as
/// ``MutantFreeBSDKernel``, a panic is played as a kernel that answers EIO from then on.
final class MutantOpenBSDKernel: KernelInterface, OpenBSDProcessInterface, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        /// One instance at a time: open fails with EBUSY while another kcov fd is open (the
        /// pre-clone driver's answer).
        case exclusiveOpen
        /// Tracing records nothing: no syscall, ioctls included, leaves an entry. (The probe alone
        /// recording nothing would not do: KIOENABLE's return and KIODISABLE's entry are kernel
        /// code too, and the regress `coverage` test sees them.)
        case recordsNothing
        /// close of a tracing fd is refused (EBUSY) and the fd stays open.
        case closeWhileTracingRefused
        /// A forked child cannot enable the fd it inherited (ENXIO): the child has its own state.
        case forkedChildCannotEnable
        /// kcov fds can be sent over sockets.
        case fdPassingAllowed
        /// A tracing thread's syscalls are also counted in every other mapped buffer.
        case recordsIntoOtherBuffers
        /// Kernel tasks of the process record nothing into the attached fd.
        case remoteTasksRecordNothing
        /// Closing an fd attached to the remote panics.
        case panicsClosingRemote
        /// KIODISABLE of a remote fd is refused (EPERM), as for a non-owner.
        case remoteDisableRefused
        /// KIODISABLE succeeds whatever the state.
        case disableAlwaysSucceeds
    }

    let model = OpenBSDKcovModel()
    let defect: Defect

    private struct State {
        var open: Set<CInt> = []
        var mappings: [UInt: CInt] = [:]
        var bound: Set<CInt> = []
        var attached: Set<CInt> = []
        var children: Set<CInt> = []
        var panicked = false
    }
    private let state = Mutex(State())

    init(_ defect: Defect) { self.defect = defect }

    private var thread: CInt { SystemKernel().currentThreadID() }

    private func fail(_ code: CInt) -> CInt {
        errno = code
        return -1
    }

    func open(_ path: String, flags: CInt) -> CInt {
        let refusal = state.withLock { state -> CInt? in
            if state.panicked { return EIO }
            if defect == .exclusiveOpen, !state.open.isEmpty { return EBUSY }
            return nil
        }
        if let refusal { return fail(refusal) }
        let fd = model.open(path, flags: flags)
        if fd >= 0 { state.withLock { _ = $0.open.insert(fd) } }
        return fd
    }

    func close(_ fd: CInt) -> CInt {
        if defect == .closeWhileTracingRefused, model.state(of: fd) == .trace { return fail(EBUSY) }
        let attached = state.withLock { $0.attached.contains(fd) }
        let result = model.close(fd)
        let code = errno
        state.withLock { state in
            state.open.remove(fd)
            state.attached.remove(fd)
            if attached && defect == .panicsClosingRemote { state.panicked = true }
        }
        errno = code
        return result
    }

    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        if state.withLock({ $0.panicked }) { return fail(EIO) }
        return track(fd, request, silenced { model.ioctl(fd, request, value: value) })
    }

    /// Runs a syscall; under `recordsNothing` every mapped buffer's count is put back afterwards.
    private func silenced<T>(_ call: () -> T) -> T {
        guard defect == .recordsNothing else { return call() }
        let counts = state.withLock { state in
            state.mappings.keys.map { ($0, UnsafeMutableRawPointer(bitPattern: $0)!.assumingMemoryBound(to: Atomic<UInt64>.self)[0].load(ordering: .relaxed)) }
        }
        let result = call()
        let code = errno
        for (address, count) in counts {
            UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)[0].store(count, ordering: .relaxed)
        }
        errno = code
        return result
    }

    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        let caller = thread
        if state.withLock({ $0.panicked }) { return fail(EIO) }
        if defect == .forkedChildCannotEnable, request == OpenBSDKcovABI.enable, state.withLock({ $0.children.contains(caller) }) { return fail(ENXIO) }
        return track(fd, request, silenced { model.ioctl(fd, request, pointer: pointer) })
    }

    /// Keeps what the defects need to know, and applies the DISABLE defects.
    private func track(_ fd: CInt, _ request: UInt, _ result: CInt) -> CInt {
        let code = errno
        let caller = thread
        let attached = state.withLock { $0.attached.contains(fd) }
        state.withLock { state in
            guard result == 0 else { return }
            switch request {
            case OpenBSDKcovABI.enable where !attached: state.bound.insert(caller)
            case OpenBSDKcovABI.disable: state.bound.remove(caller)
            case OpenBSDKcovABI.remoteAttach: state.attached.insert(fd)
            default: break
            }
        }
        if request == OpenBSDKcovABI.disable {
            if defect == .disableAlwaysSucceeds { return 0 }
            if defect == .remoteDisableRefused, attached { return fail(EPERM) }
        }
        errno = code
        return result
    }

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        if state.withLock({ $0.panicked }) {
            errno = EIO
            return nil
        }
        guard let address = model.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset) else { return nil }
        state.withLock { $0.mappings[UInt(bitPattern: address)] = fd }
        return address
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let result = model.munmap(address, length: length)
        if result == 0 { state.withLock { _ = $0.mappings.removeValue(forKey: UInt(bitPattern: address)) } }
        return result
    }

    func currentThreadID() -> CInt { model.currentThreadID() }

    func probeSyscall() {
        let caller = thread
        if defect == .recordsIntoOtherBuffers, state.withLock({ $0.bound.contains(caller) }) {
            for address in state.withLock({ Array($0.mappings.keys) }) {
                UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)[0].add(1, ordering: .relaxed)
            }
        }
        silenced { model.probeSyscall() }
    }

    func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        if defect == .forkedChildCannotEnable { return .enableFailed(errno: ENXIO) }
        return model.spawnEnabled(command, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
    }

    func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        if defect == .forkedChildCannotEnable { return .enableFailed(errno: ENXIO) }
        return model.forkEnabled(fd: fd, enable: enable, buffer: buffer, timeoutMilliseconds: timeoutMilliseconds, child: child)
    }

    func waitForExit(_ pid: CInt) -> KernelSeam.ExitStatus { model.waitForExit(pid) }
    func readTextFile(_ path: String) -> String? { model.readTextFile(path) }

    // MARK: OpenBSDProcessInterface

    func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        model.startThread { [self] in
            body()
            let caller = thread
            state.withLock { _ = $0.bound.remove(caller) }
        }
    }

    func forkChild(_ body: @escaping @Sendable () -> Void) -> Bool {
        model.runInForkedChild { [self] in
            let caller = thread
            state.withLock { _ = $0.children.insert(caller) }
            body()
            state.withLock { state in
                state.children.remove(caller)
                state.bound.remove(caller)
            }
        }
        return true
    }

    func sendDescriptor(_ fd: CInt) -> CInt? {
        defect == .fdPassingAllowed ? 0 : model.sendOverSocket(fd)
    }

    func runProcessTask() -> Bool {
        if defect != .remoteTasksRecordNothing { model.runKernelTask() }
        return true
    }

    func simulateProcessExit() -> Bool {
        model.exitProcess()
        state.withLock { $0 = State() }
        return true
    }
}
