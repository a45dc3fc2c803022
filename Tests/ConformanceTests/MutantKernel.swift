import CoverageAPI
import KernelSeam
import ReferenceModels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Linux reference model with one deliberate defect: each defect breaks exactly the behaviour
/// one conformance check proves, so that check must fail against it.
final class MutantKernel: KernelInterface, @unchecked Sendable {
    enum Defect: String, CaseIterable, Sendable {
        case sharedBufferAcrossInstances, acceptsTinyBuffers, initTwiceSucceeds, enableBeforeInitIsBusy
        case mapBeforeInitIsENOMEM, enableTwiceSucceeds, enableNeedsMapping, anyMappingLength
        case unknownRequestIsEINVAL, secondThreadMayEnable, anyThreadMayDisable, disableWhenOffIsENOENT
        case secondInstanceIsInvalid, leaksAcrossThreads, probeRecordsNothing, probeVaries
        case disableKeepsRecording, reenableIsIgnored, neverFillsLastSlot, closeStopsCollection
        case childEnableUsesWrongRequest, comparisonTypeHasUndefinedBits, duplicateHandleAccepted
    }

    typealias Request = LinuxKcovModel.Request

    let model = LinuxKcovModel()
    let defect: Defect

    private struct State {
        var words: [CInt: Int] = [:]
        var mappings: [CInt: (address: UInt, words: Int)] = [:]  // addresses as bit patterns: Sendable
        var enabledBy: [CInt: CInt] = [:]  // thread → fd
        var comparisonMode: Set<CInt> = []
        var everEnabled: Set<CInt> = []
        var firstMapping: UInt?
        var probes = 0
    }

    private let state = Mutex(State())

    init(_ defect: Defect) {
        self.defect = defect
    }

    private var thread: CInt { SystemKernel().currentThreadID() }

    private func fail(_ code: CInt) -> CInt {
        errno = code
        return -1
    }

    /// The words of a buffer recorded as a bit pattern.
    private static func slots(_ address: UInt) -> UnsafeMutablePointer<Atomic<UInt64>> {
        UnsafeMutableRawPointer(bitPattern: address)!.assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// Appends `pc` to a buffer the way kcov does.
    private static func append(_ pc: UInt64, to address: UInt, words: Int) {
        let slots = slots(address)
        let position = slots[0].load(ordering: .relaxed) + 1
        guard position < UInt64(words) else { return }
        slots[0].store(position, ordering: .relaxed)
        slots[Int(position)].store(pc, ordering: .relaxed)
    }

    /// The `neverFillsLastSlot` defect: a full buffer's count drops back by one.
    private static func keepLastSlotEmpty(_ buffer: (address: UInt, words: Int)) {
        let slots = slots(buffer.address)
        if slots[0].load(ordering: .relaxed) == UInt64(buffer.words - 1) { slots[0].store(UInt64(buffer.words - 2), ordering: .relaxed) }
    }

    func open(_ path: String, flags: CInt) -> CInt { model.open(path, flags: flags) }

    func close(_ fd: CInt) -> CInt {
        if defect == .closeStopsCollection, state.withLock({ $0.enabledBy[thread] }) == fd {
            _ = model.ioctl(fd, Request.disable, value: 0)
        }
        return model.close(fd)
    }

    func ioctl(_ fd: CInt, _ request: UInt, value: UInt) -> CInt {
        let caller = thread
        let snapshot = state.withLock { $0 }
        switch (defect, request) {
        case (.acceptsTinyBuffers, Request.initTrace) where value < 2:
            return 0
        case (.enableBeforeInitIsBusy, Request.enable) where snapshot.words[fd] == nil:
            return fail(EBUSY)
        case (.enableTwiceSucceeds, Request.enable) where snapshot.enabledBy[caller] == fd:
            return 0
        case (.enableNeedsMapping, Request.enable) where snapshot.mappings[fd] == nil:
            return fail(EINVAL)
        case (.secondThreadMayEnable, Request.enable) where snapshot.enabledBy.contains { $0.value == fd && $0.key != caller }:
            return 0
        case (.reenableIsIgnored, Request.enable) where snapshot.everEnabled.contains(fd):
            return 0
        case (.disableKeepsRecording, Request.disable):
            state.withLock { _ = $0.enabledBy.removeValue(forKey: caller) }
            return 0
        default:
            break
        }
        let result = model.ioctl(fd, request, value: value)
        let code = errno
        if defect == .neverFillsLastSlot, let own = snapshot.enabledBy[caller].flatMap({ snapshot.mappings[$0] }) {
            Self.keepLastSlotEmpty(own)  // the ioctl's own path was recorded too
        }
        if result == 0 {
            state.withLock { state in
                switch request {
                case Request.initTrace: state.words[fd] = Int(value)
                case Request.enable:
                    state.enabledBy[caller] = fd
                    state.everEnabled.insert(fd)
                    if value == 1 { state.comparisonMode.insert(fd) } else { state.comparisonMode.remove(fd) }
                case Request.disable: state.enabledBy.removeValue(forKey: caller)
                default: break
                }
            }
            return 0
        }
        switch (defect, request, code) {
        case (.initTwiceSucceeds, Request.initTrace, EBUSY): return 0
        case (.anyThreadMayDisable, Request.disable, EINVAL) where snapshot.enabledBy[caller] == nil && value == 0: return 0
        case (.disableWhenOffIsENOENT, Request.disable, EINVAL): return fail(ENOENT)
        case (.secondInstanceIsInvalid, Request.enable, EBUSY): return fail(EINVAL)
        case (.unknownRequestIsEINVAL, _, ENOTTY): return fail(EINVAL)
        default: return fail(code)
        }
    }

    func ioctl(_ fd: CInt, _ request: UInt, pointer: UnsafeMutableRawPointer) -> CInt {
        let result = model.ioctl(fd, request, pointer: pointer)
        if result != 0 && errno == EEXIST && defect == .duplicateHandleAccepted { return 0 }
        return result
    }

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> UnsafeMutableRawPointer? {
        let words = state.withLock { $0.words[fd] }
        if defect == .mapBeforeInitIsENOMEM, words == nil {
            errno = ENOMEM
            return nil
        }
        let asked = defect == .anyMappingLength ? (words ?? 0) * 8 : length
        guard let mapped = model.mmap(length: asked, protection: protection, flags: flags, fd: fd, offset: offset) else { return nil }
        let shared = defect == .sharedBufferAcrossInstances
        let address = state.withLock { state -> UInt in
            var address = UInt(bitPattern: mapped)
            if shared {
                if let first = state.firstMapping { address = first } else { state.firstMapping = address }
            }
            state.mappings[fd] = (address, words ?? length / 8)
            return address
        }
        return UnsafeMutableRawPointer(bitPattern: address)
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        let mapped = state.withLock { state -> Int? in
            guard let entry = state.mappings.first(where: { $0.value.address == key }) else { return nil }
            state.mappings.removeValue(forKey: entry.key)
            return entry.value.words
        }
        // A shared buffer stays mapped in the model once per instance; the model frees it at teardown.
        if defect == .sharedBufferAcrossInstances { return 0 }
        if defect == .anyMappingLength, let mapped { return model.munmap(address, length: mapped * 8) }
        return model.munmap(address, length: length)
    }

    func currentThreadID() -> CInt { model.currentThreadID() }

    func probeSyscall() {
        let caller = thread
        let (probes, own, others, cmp) = state.withLock { state in
            state.probes += 1
            let fd = state.enabledBy[caller]
            let own = fd.flatMap { state.mappings[$0] }
            let others = state.mappings.filter { $0.key != fd }.map(\.value)
            return (state.probes, own, others, fd.map { state.comparisonMode.contains($0) } ?? false)
        }
        if defect == .probeRecordsNothing { return }
        model.probeSyscall()
        switch defect {
        case .leaksAcrossThreads:
            for other in others { LinuxKcovModel.probePCs.forEach { Self.append($0, to: other.address, words: other.words) } }
        case .probeVaries where probes % 2 == 0:
            if let own { Self.append(0xffff_ffff_8199_9990 + UInt64(probes), to: own.address, words: own.words) }
        case .neverFillsLastSlot:
            if let own { Self.keepLastSlotEmpty(own) }
        case .comparisonTypeHasUndefinedBits where cmp:
            if let own {
                let slots = Self.slots(own.address)
                let count = Int(min(slots[0].load(ordering: .relaxed), UInt64((own.words - 1) / 4)))
                for index in 0..<count { slots[1 + 4 * index].store(slots[1 + 4 * index].load(ordering: .relaxed) | 0x10, ordering: .relaxed) }
            }
        default:
            break
        }
    }

    func spawnEnabled(
        _ command: Command, fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, bufferBytes: Int
    ) -> SpawnOutcome {
        var call = enable
        if defect == .childEnableUsesWrongRequest { call.request = 0x6399 }
        return model.spawnEnabled(command, fd: fd, enable: call, buffer: buffer, bufferBytes: bufferBytes)
    }

    func forkEnabled(
        fd: CInt, enable: EnableCall, buffer: UnsafeMutableRawPointer, timeoutMilliseconds: Int32?, child: () -> CInt
    ) -> ForkOutcome {
        var call = enable
        if defect == .childEnableUsesWrongRequest { call.request = 0x6399 }
        return model.forkEnabled(fd: fd, enable: call, buffer: buffer, timeoutMilliseconds: timeoutMilliseconds, child: child)
    }

    func waitForExit(_ pid: CInt) -> ExitStatus { model.waitForExit(pid) }

    func readTextFile(_ path: String) -> String? { model.readTextFile(path) }
}
