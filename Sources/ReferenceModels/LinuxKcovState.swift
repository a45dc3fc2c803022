#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

// The simulated kernel behind `LinuxKcovModel`: every type here is used only under the model's
// lock, so none of them is Sendable.

/// A kcov buffer: `vmalloc_user` memory (Docs/kcov-linux.md#kcov_init_trace), here an anonymous private mapping, so it is
/// page-aligned, zeroed and only backed by memory when touched. Bound once to `Atomic<UInt64>`:
/// the model writes with relaxed atomic stores and clients read with relaxed atomic loads.
final class KcovArea {
    let base: UnsafeMutableRawPointer
    let words: Int
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    private(set) var isFreed = false

    /// `nil` when the memory cannot be had: the kernel's ENOMEM.
    init?(words: Int) {
        let bytes = words * 8
        guard let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              address != MAP_FAILED
        else { return nil }
        base = address
        self.words = words
        slots = address.bindMemory(to: Atomic<UInt64>.self, capacity: words)
    }

    subscript(index: Int) -> UInt64 {
        get { slots[index].load(ordering: .relaxed) }
        set { slots[index].store(newValue, ordering: .relaxed) }
    }

    /// `vfree`: exactly once.
    func free() {
        precondition(!isFreed, "kcov area freed twice")
        isFreed = true
        _ = munmap(base, words * 8)
    }

    // MARK: Recording (Docs/kcov-linux.md#buffer-layout)

    /// `__sanitizer_cov_trace_pc` into a buffer of `size` words: the count is bumped first, the PC
    /// stored after it; a full buffer drops the PC, so the count saturates at `size - 1`. A count
    /// of `UInt64.max` wraps `pos` to 0 (Docs/kcov-linux.md#pc-mode, user-corrupted count).
    func recordPC(_ pc: UInt64) {
        let position = self[0] &+ 1
        guard position < UInt64(words) else { return }
        self[0] = position
        self[Int(position)] = pc
    }

    /// `write_comp_data`: with `boundsCount` (6.12.117 and later, ``LinuxKcovModel/KernelVersion``),
    /// `count >= max_pos / 32` returns at once. Then the record is written only if
    /// `(1 + 4 * count + 4) * 8 <= max_pos`, the count first (Docs/kcov-linux.md#cmp-mode). The
    /// arithmetic wraps as the kernel's u64 arithmetic does, and so does the address
    /// `&area[1 + 4 * count]`: without the early return a user-written count of 2^61 passes the
    /// bound (it wraps to 40) and the record lands at word 1, the count going on from 2^61 + 1.
    /// A count of `UInt64.max` (or 2^59 − 1) puts the record three words before the buffer, which
    /// a real kernel writes into whatever lies there; the model drops those three words and
    /// keeps the one that lands in word 0 (the PC).
    func recordComparison(_ record: LinuxKcovModel.Comparison, boundsCount: Bool) {
        let maxPosition = UInt64(words) * 8
        let count = self[0]
        if boundsCount {
            guard count < maxPosition / 32 else { return }
        }
        let start = 1 &+ 4 &* count
        guard (start &+ 4) &* 8 <= maxPosition else { return }
        self[0] = count &+ 1
        for (offset, word) in record.words.enumerated() {
            // A byte address wraps at 2^64, so a word index wraps at 2^61.
            let index = (start &+ UInt64(offset)) & (UInt64.max >> 3)
            if index < UInt64(words) { self[Int(index)] = word }
        }
    }

    /// Records `path` the way a task in `mode` would.
    func record(_ path: LinuxKcovModel.KernelPath, mode: LinuxKcovModel.Mode, version: LinuxKcovModel.KernelVersion) {
        switch mode {
        case .tracePC: path.pcs.forEach(recordPC)
        case .traceCMP: path.comparisons.forEach { recordComparison($0, boundsCount: version.boundsComparisonCount) }
        case .disabled, .initialized: break
        }
    }
}

/// `struct kcov` (Docs/kcov-linux.md#state-machine): one per open. Its references are the file (while an fd or a mapping
/// holds it), the enabled task, and in-flight remote sections; the buffer goes when all are gone.
final class KcovInstance {
    var mode: LinuxKcovModel.Mode = .disabled
    var remote = false
    var remoteSize: UInt32 = 0
    var area: KcovArea?
    /// `kcov->t`: the thread the fd is enabled for.
    var owner: CInt?
    var sequence: UInt64 = 1
    /// The `struct file` still exists (an fd or a mapping refers to it).
    var fileAlive = true
    var sectionsInFlight = 0
    private(set) var isReleased = false

    var isUnreferenced: Bool { !fileAlive && owner == nil && sectionsInFlight == 0 }

    /// `kcov_reset` (Docs/kcov-linux.md#state-machine): back to INIT with the buffer and its contents kept.
    func reset() {
        owner = nil
        mode = .initialized
        remote = false
        remoteSize = 0
        sequence &+= 1
    }

    /// The last `kcov_put`; returns whether a buffer was freed.
    func release() -> Bool {
        precondition(!isReleased, "kcov instance released twice")
        isReleased = true
        guard let area else { return false }
        area.free()
        self.area = nil
        return true
    }
}

/// An open of the device: the `struct file`, referenced by its fd until close and by each mapping.
final class KcovFile {
    let instance: KcovInstance
    let readable: Bool
    let writable: Bool
    var descriptorOpen = true
    var mappings = 0

    init(instance: KcovInstance, flags: CInt) {
        self.instance = instance
        let access = flags & O_ACCMODE
        readable = access == O_RDONLY || access == O_RDWR
        writable = access == O_WRONLY || access == O_RDWR
    }
}

/// What a thread's `task_struct` holds for kcov (Docs/kcov-linux.md#state-machine): its enabled kcov and the task mode.
struct KcovTask {
    /// `t->kcov`.
    var kcov: KcovInstance?
    /// `t->kcov_mode`: TRACE_PC, TRACE_CMP, or nil for KCOV_MODE_REMOTE (records nothing itself).
    var recordingMode: LinuxKcovModel.Mode?
    /// `t->kcov_handle`, set by a remote enable with a common handle.
    var commonHandle: UInt64 = 0
}

/// One user mapping of a buffer; the model hands out the buffer's own address, so all mappings of
/// one buffer share an address and are counted.
struct KcovMapping {
    let file: KcovFile
    let bytes: Int
    var count: Int
}

/// A remote section between `kcov_remote_start` and `kcov_remote_stop`.
struct KcovSection {
    let instance: KcovInstance
    let sequence: UInt64
    let mode: LinuxKcovModel.Mode
    /// What the section recorded into its own temporary buffer: PCs, or comparison records.
    let pcs: [UInt64]
    let comparisons: [LinuxKcovModel.Comparison]
}

/// The whole simulated kernel: fd table, mappings, tasks, remote handles.
final class KcovKernel {
    let comparisonsBuiltIn: Bool
    let version: LinuxKcovModel.KernelVersion
    let pageSize: Int
    var descriptors: [CInt: KcovFile] = [:]
    var mappings: [UInt: KcovMapping] = [:]
    var tasks: [CInt: KcovTask] = [:]
    /// The global handle table of `kcov_remote_add` (Docs/kcov-linux.md#kcov_remote_enable, step 9).
    var remoteHandles: [UInt64: KcovInstance] = [:]
    var sections: [Int: KcovSection] = [:]
    var nextSection = 1
    var liveBuffers = 0
    var nextPid: CInt = 100_000
    var finishedChildren: [CInt: ExitStatus] = [:]

    static let firstDescriptor: CInt = 1000

    init(comparisonsBuiltIn: Bool, version: LinuxKcovModel.KernelVersion) {
        self.comparisonsBuiltIn = comparisonsBuiltIn
        self.version = version
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    // MARK: Tasks

    /// Records `path` for `tid` if its task mode is TRACE_PC or TRACE_CMP (`check_kcov_mode`).
    func record(_ path: LinuxKcovModel.KernelPath, for tid: CInt) {
        guard let task = tasks[tid], let mode = task.recordingMode, let area = task.kcov?.area else { return }
        area.record(path, mode: mode, version: version)
    }

    /// `kcov_disable` (Docs/kcov-linux.md#kcov_disable): task reset, then remote reset (handles unregistered) or kcov reset.
    /// Does not drop the task's reference; the caller does.
    func disable(_ instance: KcovInstance, task tid: CInt) {
        tasks[tid] = nil
        if instance.remote {
            for (handle, holder) in remoteHandles where holder === instance { remoteHandles[handle] = nil }
        }
        instance.reset()
    }

    /// `kcov_put`: frees the instance and its buffer once nothing refers to it.
    func releaseIfUnreferenced(_ instance: KcovInstance) {
        guard instance.isUnreferenced, !instance.isReleased else { return }
        if instance.release() { liveBuffers -= 1 }
    }

    /// The file's last reference went (fd closed and no mapping left): `kcov_close` → `kcov_put`.
    func releaseFileIfUnreferenced(_ file: KcovFile) {
        guard !file.descriptorOpen, file.mappings == 0, file.instance.fileAlive else { return }
        file.instance.fileAlive = false
        releaseIfUnreferenced(file.instance)
    }

    /// `kcov_task_exit` (Docs/kcov-linux.md#thread-exit).
    func threadExited(_ tid: CInt) {
        if let instance = tasks[tid]?.kcov, instance.owner == tid {
            disable(instance, task: tid)
            releaseIfUnreferenced(instance)
        }
        tasks[tid] = nil
    }

    // MARK: Descriptors

    func open(flags: CInt) -> CInt {
        var fd = Self.firstDescriptor
        while descriptors[fd] != nil { fd += 1 }
        descriptors[fd] = KcovFile(instance: KcovInstance(), flags: flags)
        return fd
    }

    func close(_ fd: CInt) -> CInt {
        guard let file = descriptors.removeValue(forKey: fd) else { return EBADF }
        file.descriptorOpen = false
        releaseFileIfUnreferenced(file)
        return 0
    }

    // MARK: ioctl (Docs/kcov-linux.md#ioctls)

    func ioctl(_ fd: CInt, _ request: UInt, _ argument: UInt, tid: CInt) -> CInt {
        guard let file = descriptors[fd] else {
            record(LinuxKcovModel.syscallPath, for: tid)
            return EBADF
        }
        record(LinuxKcovModel.ioctlEntryPath, for: tid)
        let result = dispatch(file.instance, request, argument, tid: tid)
        record(LinuxKcovModel.ioctlExitPath, for: tid)
        return result
    }

    private func dispatch(_ instance: KcovInstance, _ request: UInt, _ argument: UInt, tid: CInt) -> CInt {
        switch request {
        case LinuxKcovModel.Request.initTrace: initTrace(instance, words: argument)
        case LinuxKcovModel.Request.enable: enable(instance, argument, tid: tid)
        case LinuxKcovModel.Request.disable: disable(instance, argument, tid: tid)
        case LinuxKcovModel.Request.remoteEnable: remoteEnable(instance, UnsafeRawPointer(bitPattern: argument), tid: tid)
        // FIOCLEX and FIONCLEX are answered by the VFS before kcov sees the request.
        case LinuxKcovModel.Request.closeOnExec, LinuxKcovModel.Request.noCloseOnExec: 0
        default: ENOTTY
        }
    }

    /// Docs/kcov-linux.md#kcov_init_trace: size, then allocation, then state.
    private func initTrace(_ instance: KcovInstance, words: UInt) -> CInt {
        guard words >= 2, words <= UInt(Int32.max) / 8 else { return EINVAL }
        guard let area = KcovArea(words: Int(words)) else { return ENOMEM }
        guard instance.mode == .disabled else {
            area.free()
            return EBUSY
        }
        instance.area = area
        instance.mode = .initialized
        liveBuffers += 1
        return 0
    }

    /// `kcov_get_mode`: 0 → PC, 1 → CMP or ENOTSUPP, anything else (all 64 bits compared) → EINVAL.
    private func traceMode(_ argument: UInt) -> Result<LinuxKcovModel.Mode, Errno> {
        switch argument {
        case 0: .success(.tracePC)
        case 1: comparisonsBuiltIn ? .success(.traceCMP) : .failure(Errno(LinuxKcovModel.enotsupp))
        default: .failure(Errno(EINVAL))
        }
    }

    /// Docs/kcov-linux.md#kcov_enable: state, then busy, then mode. Does not touch `area[0]`.
    private func enable(_ instance: KcovInstance, _ argument: UInt, tid: CInt) -> CInt {
        guard instance.mode == .initialized, instance.area != nil else { return EINVAL }
        guard instance.owner == nil, tasks[tid]?.kcov == nil else { return EBUSY }
        let mode: LinuxKcovModel.Mode
        switch traceMode(argument) {
        case .success(let value): mode = value
        case .failure(let error): return error.code
        }
        instance.mode = mode
        instance.owner = tid
        var task = tasks[tid] ?? KcovTask()
        task.kcov = instance
        task.recordingMode = mode
        tasks[tid] = task
        return 0
    }

    /// Docs/kcov-linux.md#kcov_disable: the argument must be 0 and the calling thread's kcov must be this one.
    private func disable(_ instance: KcovInstance, _ argument: UInt, tid: CInt) -> CInt {
        guard argument == 0, let task = tasks[tid], task.kcov === instance else { return EINVAL }
        disable(instance, task: tid)
        releaseIfUnreferenced(instance)
        return 0
    }

    // MARK: REMOTE_ENABLE (Docs/kcov-linux.md#kcov_remote_enable)

    /// Docs/kcov-linux.md#kcov_remote_enable, steps in order; the argument is `struct kcov_remote_arg` followed by the handles.
    private func remoteEnable(_ instance: KcovInstance, _ argument: UnsafeRawPointer?, tid: CInt) -> CInt {
        // 1. get_user(num_handles): the model can only recognise the null page as a fault.
        guard let argument else { return EFAULT }
        let handleCount = argument.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        // 2. The handle count is checked before any state.
        guard handleCount <= UInt32(LinuxKcovModel.maxRemoteHandles) else { return EINVAL }
        // 3–4. memdup_user of 24 + 8n bytes; one read, so the count cannot change under us.
        let traceArgument = argument.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
        let areaSize = argument.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let common = argument.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        let handles = (0..<Int(handleCount)).map {
            argument.loadUnaligned(fromByteOffset: 24 + 8 * $0, as: UInt64.self)
        }
        // 5. State.
        guard instance.mode == .initialized, instance.area != nil else { return EINVAL }
        // 6. Busy.
        guard instance.owner == nil, tasks[tid]?.kcov == nil else { return EBUSY }
        // 7. Mode.
        let mode: LinuxKcovModel.Mode
        switch traceMode(UInt(traceArgument)) {
        case .success(let value): mode = value
        case .failure(let error): return error.code
        }
        // 8. area_size > LONG_MAX / sizeof(long): a u32 can never exceed it on a 64-bit kernel.
        guard UInt64(areaSize) <= UInt64(Int64.max) / 8 else { return EINVAL }
        // 9. Enable as remote, then register each handle; any failure rolls everything back.
        instance.mode = mode
        instance.owner = tid
        instance.remote = true
        instance.remoteSize = areaSize
        var task = tasks[tid] ?? KcovTask()
        task.kcov = instance
        task.recordingMode = nil
        tasks[tid] = task
        for handle in handles {
            let result = LinuxKcovModel.isValidHandle(handle, common: false, uncommon: true, zero: false)
                ? register(handle, instance) : EINVAL
            if result != 0 {
                disable(instance, task: tid)
                return result
            }
        }
        // 10. The common handle: COMMON subsystem with a non-zero instance, registered like the others.
        if common != 0 {
            let result = LinuxKcovModel.isValidHandle(common, common: true, uncommon: false, zero: false)
                ? register(common, instance) : EINVAL
            if result != 0 {
                disable(instance, task: tid)
                return result
            }
            tasks[tid]?.commonHandle = common
        }
        return 0
    }

    /// `kcov_remote_add`: EEXIST when any kcov already holds `handle`.
    private func register(_ handle: UInt64, _ instance: KcovInstance) -> CInt {
        guard remoteHandles[handle] == nil else { return EEXIST }
        remoteHandles[handle] = instance
        return 0
    }

    // MARK: Remote sections (Docs/kcov-linux.md#remote-sections)

    /// `kcov_remote_start(handle)`: the section's code runs at once into a temporary buffer of
    /// `remote_size` words (task context) or the IRQ area (softirq).
    func startSection(handle: UInt64, softirq: Bool) -> Int? {
        guard let instance = remoteHandles[handle], instance.remote,
              instance.mode == .tracePC || instance.mode == .traceCMP
        else { return nil }
        let mode = instance.mode
        let temporaryWords = softirq ? LinuxKcovModel.irqAreaWords : Int(instance.remoteSize)
        let path = LinuxKcovModel.remoteSectionPath
        // The temporary buffer follows the same bounds as any kcov buffer.
        let pcs = Array(path.pcs.prefix(max(0, temporaryWords - 1)))
        let comparisons = Array(path.comparisons.prefix(max(0, temporaryWords - 1) / 4))
        instance.sectionsInFlight += 1
        let id = nextSection
        nextSection += 1
        sections[id] = KcovSection(
            instance: instance, sequence: instance.sequence, mode: mode,
            pcs: mode == .tracePC ? pcs : [], comparisons: mode == .traceCMP ? comparisons : [])
        return id
    }

    /// `kcov_remote_stop`: appends the section's entries to the fd's buffer if the fd was not
    /// disabled or re-enabled meanwhile (sequence check), truncated to the free space; nothing if
    /// the user-written count already exceeds the capacity (`kcov_move_area`). Returns the
    /// number of entries appended.
    func stopSection(_ id: Int) -> Int {
        guard let section = sections.removeValue(forKey: id) else { return 0 }
        let instance = section.instance
        instance.sectionsInFlight -= 1
        defer { releaseIfUnreferenced(instance) }
        guard instance.remote, instance.sequence == section.sequence, let area = instance.area else { return 0 }
        let entryWords = section.mode == .tracePC ? 1 : 4
        let capacity = UInt64((area.words - 1) / entryWords)
        let occupied = area[0]
        guard occupied <= capacity else { return 0 }
        let entries: [[UInt64]] = section.mode == .tracePC ? section.pcs.map { [$0] } : section.comparisons.map(\.words)
        let moved = min(Int(capacity - occupied), entries.count)
        for index in 0..<moved {
            for (offset, word) in entries[index].enumerated() {
                area[1 + (Int(occupied) + index) * entryWords + offset] = word
            }
        }
        area[0] = occupied + UInt64(moved)
        return moved
    }

    // MARK: mmap (Docs/kcov-linux.md#mmap)

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> Result<UnsafeMutableRawPointer, Errno> {
        // The syscall: the offset must be page-aligned; then the fd; then generic do_mmap checks.
        guard offset >= 0, offset % pageSize == 0 else { return .failure(Errno(EINVAL)) }
        guard let file = descriptors[fd] else { return .failure(Errno(EBADF)) }
        guard length > 0 else { return .failure(Errno(EINVAL)) }
        guard length <= Int.max - pageSize else { return .failure(Errno(ENOMEM)) }
        let rounded = (length + pageSize - 1) / pageSize * pageSize
        switch flags & 0x0f {
        case MAP_SHARED, 0x03 /* MAP_SHARED_VALIDATE */:
            if protection & PROT_WRITE != 0, !file.writable { return .failure(Errno(EACCES)) }
            if !file.readable { return .failure(Errno(EACCES)) }
        case MAP_PRIVATE:
            if !file.readable { return .failure(Errno(EACCES)) }
        default:
            return .failure(Errno(EINVAL))
        }
        // kcov_mmap: a buffer, offset 0, exactly the buffer's size after page rounding.
        let instance = file.instance
        guard let area = instance.area else { return .failure(Errno(EINVAL)) }
        guard offset == 0 else { return .failure(Errno(EINVAL)) }
        guard rounded == area.words * 8 else { return .failure(Errno(EINVAL)) }
        let key = UInt(bitPattern: area.base)
        mappings[key, default: KcovMapping(file: file, bytes: rounded, count: 0)].count += 1
        file.mappings += 1
        return .success(area.base)
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) -> CInt {
        let key = UInt(bitPattern: address)
        guard key % UInt(pageSize) == 0, length > 0, length <= Int.max - pageSize else { return EINVAL }
        let rounded = (length + pageSize - 1) / pageSize * pageSize
        guard var mapping = mappings[key], mapping.bytes == rounded else { return EINVAL }
        mapping.count -= 1
        mappings[key] = mapping.count == 0 ? nil : mapping
        mapping.file.mappings -= 1
        releaseFileIfUnreferenced(mapping.file)
        return 0
    }

    /// Frees everything still allocated (the model itself is going away).
    func tearDown() {
        var all: [KcovInstance] = descriptors.values.map(\.instance)
        all += mappings.values.map(\.file.instance)
        all += tasks.values.compactMap(\.kcov)
        all += sections.values.map(\.instance)
        var seen = Set<ObjectIdentifier>()
        for instance in all where seen.insert(ObjectIdentifier(instance)).inserted && !instance.isReleased {
            if instance.release() { liveBuffers -= 1 }
        }
        descriptors = [:]
        mappings = [:]
        tasks = [:]
        sections = [:]
        remoteHandles = [:]
    }
}

/// An errno value as a typed error.
struct Errno: Error {
    let code: CInt
    init(_ code: CInt) { self.code = code }
}
