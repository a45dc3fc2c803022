import CoverageAPI
import FreeBSDBackend
import KernelSeam
import ReferenceModels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The FreeBSD model with one defect, to show each FreeBSD check can fail. Every call goes to the
/// model; the defect changes one behaviour in this wrapper (the model has no hooks for defects).
/// Panics, which a model cannot have and go on, are played as a kernel that is dead from then on:
/// every later open, ioctl and mmap fails with EIO.
final class MutantFreeBSDKernel: KernelInterface, FreeBSDProcessInterface, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        /// KIOSETBUFSIZE of fewer than 2 entries succeeds (and allocates nothing).
        case acceptsTinyBuffer
        /// mmap before KIOSETBUFSIZE maps some other memory instead of failing.
        case mapWithoutBuffer
        /// close frees the buffer under a live mapping: its pages read as zero afterwards.
        case closeFreesMappedBuffer
        /// The process exiting with a buffer still mapped panics.
        case panicsAtExitWithMapping
        /// The process exiting with an fd still RUNNING panics.
        case panicsAtExitWhileEnabled
        /// Destroying a thread whose fd was closed while RUNNING panics (close freed it already).
        case panicsDestroyingThreadOfClosedFd
        /// KIODISABLE succeeds whatever the state.
        case disableAlwaysSucceeds
        /// The probe syscall records nothing.
        case probeRecordsNothing
        /// CMP mode records nothing (a kernel without trace-cmp).
        case cmpRecordsNothing
        /// A thread that has not enabled kcov has its syscalls counted in every enabled buffer.
        case recordsOtherThreads
        /// A thread's destruction leaves its fd RUNNING (no `kcov_thread_dtor`).
        case threadExitKeepsRunning
    }

    let model = FreeBSDKcovModel()
    let defect: Defect

    private struct State {
        var mappings: [UInt: (fd: CInt, bytes: Int)] = [:]
        var foreignMappings: Set<UInt> = []
        var bindings: [CInt: (fd: CInt, mode: Int32)] = [:]
        var closedWhileRunning = false
        var panicked = false
    }
    private let state = Mutex(State())

    init(_ defect: Defect) { self.defect = defect }

    private var thread: CInt { SystemKernel().currentThreadID() }
    private var panicked: Bool { state.withLock { $0.panicked } }

    private func fail(_ code: CInt) -> CInt {
        errno = code
        return -1
    }

    func open(_ path: String, flags: CInt) -> CInt {
        panicked ? fail(EIO) : model.open(path, flags: flags)
    }

    func close(_ fd: CInt) -> CInt {
        let running = model.state(of: fd) == .running
        let result = model.close(fd)
        let code = errno
        state.withLock { state in
            if running { state.closedWhileRunning = true }
            for (address, mapping) in state.mappings where mapping.fd == fd {
                if defect == .closeFreesMappedBuffer {
                    UnsafeMutableRawPointer(bitPattern: address)!.initializeMemory(as: UInt8.self, repeating: 0, count: mapping.bytes)
                }
                state.mappings[address] = (-1, mapping.bytes)
            }
        }
        errno = code
        return result
    }

    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        if panicked { return fail(EIO) }
        let caller = thread
        if defect == .acceptsTinyBuffer, request == FreeBSDKcovABI.setBufferSize, value < 2, model.state(of: fd) == .open { return 0 }
        let result = model.ioctl(fd, request, value: value)
        let code = errno
        if result == 0 && request == FreeBSDKcovABI.enable { state.withLock { $0.bindings[caller] = (fd, Int32(truncatingIfNeeded: value)) } }
        if result == 0 && request == FreeBSDKcovABI.disable { state.withLock { _ = $0.bindings.removeValue(forKey: caller) } }
        if defect == .disableAlwaysSucceeds, request == FreeBSDKcovABI.disable { return 0 }
        errno = code
        return result
    }

    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        ioctl(fd, request, value: UInt(bitPattern: pointer))
    }

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        if panicked {
            errno = EIO
            return nil
        }
        if defect == .mapWithoutBuffer, model.state(of: fd) == .open {
            let address = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
            state.withLock { _ = $0.foreignMappings.insert(UInt(bitPattern: address)) }
            return address
        }
        guard let address = model.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset) else { return nil }
        state.withLock { $0.mappings[UInt(bitPattern: address)] = (fd, length) }
        return address
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        if state.withLock({ $0.foreignMappings.remove(UInt(bitPattern: address)) }) != nil { return Glibc.munmap(address, length) }
        let result = model.munmap(address, length: length)
        if result == 0 { state.withLock { _ = $0.mappings.removeValue(forKey: UInt(bitPattern: address)) } }
        return result
    }

    func currentThreadID() -> CInt { model.currentThreadID() }

    func probeSyscall() {
        let caller = thread
        let binding = state.withLock { $0.bindings[caller] }
        if defect == .probeRecordsNothing || (defect == .cmpRecordsNothing && binding?.mode == FreeBSDKcovABI.modeTraceCMP) {
            errno = EBADF
            return
        }
        if defect == .recordsOtherThreads, binding == nil {
            let buffers = state.withLock { state in
                state.bindings.values.compactMap { binding in state.mappings.first { $0.value.fd == binding.fd }?.key }
            }
            for address in buffers {
                UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)[0].add(1, ordering: .relaxed)
            }
        }
        model.probeSyscall()
    }

    func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        model.spawnEnabled(command, fd: fd, enable: enable, buffer: buffer, bufferBytes: bufferBytes)
    }

    func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        return model.forkEnabled(fd: fd, enable: enable, buffer: buffer, timeoutMilliseconds: timeoutMilliseconds, child: child)
    }

    func waitForExit(_ pid: CInt) -> KernelSeam.ExitStatus { model.waitForExit(pid) }
    func readTextFile(_ path: String) -> String? { model.readTextFile(path) }

    // MARK: FreeBSDProcessInterface

    func startThread(_ body: @escaping @Sendable () -> Void) -> @Sendable () -> Void {
        if defect == .threadExitKeepsRunning {
            let thread = POSIXThread(body)
            return { thread.join() }
        }
        let join = model.startThread(body)
        return { [self] in
            join()
            state.withLock { state in
                if defect == .panicsDestroyingThreadOfClosedFd && state.closedWhileRunning { state.panicked = true }
            }
        }
    }

    func simulateProcessExit() -> Bool {
        let panics = state.withLock { state in
            switch defect {
            case .panicsAtExitWithMapping: !state.mappings.isEmpty
            case .panicsAtExitWhileEnabled: !state.bindings.isEmpty
            default: false
            }
        }
        model.exitProcess()
        state.withLock { state in
            state = State()
            state.panicked = panics
        }
        return true
    }
}
