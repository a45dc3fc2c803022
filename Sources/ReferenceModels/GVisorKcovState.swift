#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

// The simulated sentry behind `GVisorKcovModel`: every type here is used only under the model's
// lock, so none of them is Sendable.

/// A kcov buffer: the `mappable` a Kcov allocates from the sandbox MemoryFile at its first mmap
/// (Docs/kcov-gvisor.md#mmap). Here a memfd of `words * 8` bytes, so it is page-aligned and zeroed, and every user
/// mapping is a real mapping of the same memory at its own address: several mappings share it, a
/// window at an offset sees the right words, a mapping longer than the buffer raises SIGBUS past
/// the end (as gVisor's `Translate` does), and MAP_PRIVATE copies on write.
///
/// The sentry writes through its own shared view, bound once to `Atomic<UInt64>`: relaxed atomic
/// stores, read by clients with relaxed atomic loads.
final class GVisorKcovMemory {
    /// The memfd: what user mappings map.
    let file: CInt
    /// The sentry's own view of the whole buffer.
    let base: UnsafeMutableRawPointer
    let words: Int
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    /// `kcov.mappable` still points here (until DISABLE or close drops it).
    var heldByKcov = true
    /// User mappings not yet unmapped: each VMA holds its own reference (Docs/kcov-gvisor.md#mmap).
    var mappings = 0
    private(set) var isFreed = false

    var isUnreferenced: Bool { !heldByKcov && mappings == 0 }

    private init(file: CInt, base: UnsafeMutableRawPointer, words: Int) {
        self.file = file
        self.base = base
        self.words = words
        slots = base.bindMemory(to: Atomic<UInt64>.self, capacity: words)
    }

    /// Allocates `words` zeroed words; the errno of whatever failed (the MemoryFile's ENOMEM).
    /// `name` appears in `/proc/self/maps` as `/memfd:<name>`, after gVisor's `[kcov:<tid>]`.
    static func allocate(words: Int, name: String) -> Result<GVisorKcovMemory, Errno> {
        let bytes = words * 8
        let file = makeAnonymousFile(name: name)
        guard file >= 0 else { return .failure(Errno(errno)) }
        guard ftruncate(file, off_t(bytes)) == 0,
              let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0), base != MAP_FAILED
        else {
            let error = errno
            _ = close(file)
            return .failure(Errno(error))
        }
        return .success(GVisorKcovMemory(file: file, base: base, words: words))
    }

    subscript(index: Int) -> UInt64 {
        get { slots[index].load(ordering: .relaxed) }
        set { slots[index].store(newValue, ordering: .relaxed) }
    }

    /// The MemoryFile range goes back: exactly once, when neither the Kcov nor a mapping holds it.
    func free() {
        precondition(!isFreed, "kcov buffer freed twice")
        isFreed = true
        _ = munmap(base, words * 8)
        _ = close(file)
    }

    /// `ConsumeCoverageData` into this buffer (Docs/kcov-gvisor.md#buffer-layout): reads the count word (so a user reset is
    /// honoured), writes `pcs` from word `count + 1` until the end of the buffer, drops the rest,
    /// and stores `count + written`. Nothing fits when `count >= size - 1`. The byte offset
    /// `8 * (1 + count)` is computed in wrapping u64 arithmetic, so a user-written count near
    /// 2^61 wraps the offset to the start of the buffer [inferred]. Returns how many were written.
    @discardableResult
    func consume(_ pcs: [UInt64]) -> Int {
        let count = self[0]
        let sizeBytes = UInt64(words) * 8
        var offset = (1 &+ count) &* 8
        var written: UInt64 = 0
        for pc in pcs {
            guard offset < sizeBytes else { break }
            self[Int(offset / 8)] = pc
            offset += 8
            written += 1
        }
        self[0] = count &+ written
        return Int(written)
    }

    /// An unlinked file in memory: `memfd_create(name, MFD_CLOEXEC)` looked up at run time (Glibc's
    /// Swift module does not declare it), else an unlinked temporary file.
    private static func makeAnonymousFile(name: String) -> CInt {
        typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, CUnsignedInt) -> CInt
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "memfd_create") {
            let create = unsafeBitCast(symbol, to: MemfdCreate.self)
            let file = name.withCString { create($0, 1 /* MFD_CLOEXEC */) }
            if file >= 0 || errno != ENOSYS { return file }
        }
        for directory in ["/dev/shm", "/tmp"] {
            var template = Array("\(directory)/kcov-model-XXXXXX".utf8CString)
            let file = mkstemp(&template)
            if file >= 0 {
                _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
                return file
            }
        }
        return -1
    }
}

/// How many of one model's tasks and Kcov instances are alive: each counts itself in when made
/// and out when freed. A task and the Kcov it enabled refer to each other (`Task.kcov`, the task
/// work, `owningTask`), so only a teardown that breaks those links brings this back to 0.
package final class GVisorObjectCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Tasks and Kcov instances alive now.
    package var live: Int { count.load(ordering: .acquiring) }

    func made() { count.add(1, ordering: .relaxed) }
    func freed() { count.subtract(1, ordering: .releasing) }
}

/// `kernel.Kcov` (Docs/kcov-gvisor.md#state-machine): one per open of the device.
final class GVisorKcovInstance {
    private let objects: GVisorObjectCount
    var mode: GVisorKcovModel.Mode = .disabled
    /// Buffer size in words, set by INIT_TRACE.
    var sizeWords: UInt64 = 0
    /// `owningTask`.
    var owner: GVisorTask?
    /// `mappable`: nil until the first mmap in INIT, and again after DISABLE or close.
    var memory: GVisorKcovMemory?

    init(objects: GVisorObjectCount) {
        self.objects = objects
        objects.made()
    }

    deinit { objects.freed() }
}

/// An open file description of the device.
final class GVisorKcovFile {
    let instance: GVisorKcovInstance
    let readable: Bool
    let writable: Bool

    init(flags: CInt, objects: GVisorObjectCount) {
        instance = GVisorKcovInstance(objects: objects)
        let access = flags & O_ACCMODE
        readable = access == O_RDONLY || access == O_RDWR
        writable = access == O_WRONLY || access == O_RDWR
    }
}

/// What a sentry `Task` holds for kcov. A class, so that ownership is by task identity as in
/// gVisor (`owningTask` is a `*Task`): a thread that reuses an exited thread's id is a new task.
final class GVisorTask {
    let tid: CInt
    /// `Task.kcov`: set by every successful ENABLE (the last one wins), cleared only at exit
    /// (DISABLE leaves it, Docs/kcov-gvisor.md#kcov_disable).
    var kcov: GVisorKcovInstance?
    /// The task-work queue, as far as kcov uses it: each entry runs at every return to user
    /// space, writes while its Kcov is in TRACE_PC and re-registers; otherwise it is dropped.
    var work: [GVisorKcovInstance] = []
    var exited = false
    private let objects: GVisorObjectCount

    init(tid: CInt, objects: GVisorObjectCount) {
        self.tid = tid
        self.objects = objects
        objects.made()
    }

    deinit { objects.freed() }
}

/// One user mapping of a buffer.
struct GVisorUserMapping {
    let memory: GVisorKcovMemory
    /// The page-rounded length that was mapped.
    let bytes: Int
}

/// The whole simulated sentry: fd table, mappings, tasks and the global Go coverage counters.
final class GVisorSentry {
    let coverageBuild: Bool
    let legacyPCs: Bool
    let pageSize: Int
    var descriptors: [CInt: GVisorKcovFile] = [:]
    var mappings: [UInt: GVisorUserMapping] = [:]
    var tasks: [CInt: GVisorTask] = [:]
    /// The sandbox-global Go coverage counters, as the set of blocks with a non-zero counter.
    var pending: Set<GVisorKcovModel.CoverageBlock> = []
    var liveBuffers = 0
    var nextPid: CInt = 200_000
    var finishedChildren: [CInt: ExitStatus] = [:]
    let objects: GVisorObjectCount

    static let firstDescriptor: CInt = 3000

    init(coverageBuild: Bool, legacyPCs: Bool, objects: GVisorObjectCount) {
        self.coverageBuild = coverageBuild
        self.legacyPCs = legacyPCs
        self.objects = objects
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    // MARK: Coverage (Docs/kcov-gvisor.md#buffer-layout)

    /// Sentry code ran (on any goroutine, for any task): its blocks' counters become non-zero. A
    /// build without `-cover` has no counters.
    func execute(_ blocks: [GVisorKcovModel.CoverageBlock]) {
        guard coverageBuild else { return }
        pending.formUnion(blocks)
    }

    /// `coverage.ClearCoverageData()`: zeroes every counter, whoever's they were.
    func clearCoverage() {
        pending.removeAll()
    }

    /// Snapshots and clears the counters: the PCs of every block that ran since the last
    /// consumption, each once, in emission order.
    func takePending() -> [UInt64] {
        let pcs = GVisorKcovModel.pcs(of: pending, legacy: legacyPCs)
        pending.removeAll()
        return pcs
    }

    /// The task for the calling thread, created at its first syscall.
    func task(_ tid: CInt) -> GVisorTask {
        if let task = tasks[tid] { return task }
        let task = GVisorTask(tid: tid, objects: objects)
        tasks[tid] = task
        return task
    }

    /// `task` returns to user space: its queued task work runs in order. A Kcov in TRACE_PC gets
    /// everything pending (so a second one queued behind it gets nothing) and stays queued; any
    /// other is dropped (Docs/kcov-gvisor.md#buffer-layout, Docs/kcov-gvisor.md#threads-and-lifecycle).
    func returnToUser(_ task: GVisorTask) {
        task.work = task.work.filter { instance in
            guard instance.mode == .tracePC, let memory = instance.memory else { return false }
            memory.consume(takePending())
            return true
        }
    }

    /// `runExitMain` → `Task.ResetKcov` → `Kcov.OnTaskExit` (Docs/kcov-gvisor.md#thread-exit): the task's last-enabled Kcov
    /// goes to INIT with no owner and keeps its buffer, **whoever owns it now** [inferred]. The
    /// task never returns to user space again.
    func threadExited(_ tid: CInt) {
        guard let task = tasks.removeValue(forKey: tid) else { return }
        task.exited = true
        task.work = []
        if let instance = task.kcov {
            instance.mode = .initialized
            instance.owner = nil
        }
        task.kcov = nil
    }

    // MARK: Buffers

    /// `mappable.DecRef(); mappable = nil`: existing mappings keep the memory.
    func dropMemory(_ instance: GVisorKcovInstance) {
        guard let memory = instance.memory else { return }
        instance.memory = nil
        memory.heldByKcov = false
        freeIfUnreferenced(memory)
    }

    func freeIfUnreferenced(_ memory: GVisorKcovMemory) {
        guard memory.isUnreferenced, !memory.isFreed else { return }
        memory.free()
        liveBuffers -= 1
    }

    // MARK: Descriptors (Docs/kcov-gvisor.md#device-and-open)

    func open(flags: CInt) -> CInt {
        var fd = Self.firstDescriptor
        while descriptors[fd] != nil { fd += 1 }
        descriptors[fd] = GVisorKcovFile(flags: flags, objects: objects)
        return fd
    }

    /// The last close: `kcovFD.Release` → `Kcov.Clear` (Docs/kcov-gvisor.md#close-while-enabled): INIT, no owner, buffer dropped, from
    /// any state. The owner's next return to user space finds INIT, so collection stops at once.
    func close(_ fd: CInt) -> CInt {
        guard let file = descriptors.removeValue(forKey: fd) else { return EBADF }
        let instance = file.instance
        instance.mode = .initialized
        instance.owner = nil
        dropMemory(instance)
        return 0
    }

    // MARK: ioctl (Docs/kcov-gvisor.md#ioctls)

    func ioctl(_ fd: CInt, _ request: UInt, _ argument: UInt, task: GVisorTask) -> CInt {
        guard let file = descriptors[fd] else {
            execute(GVisorKcovModel.syscallBlocks)
            return EBADF
        }
        execute(GVisorKcovModel.ioctlEntryBlocks)
        let result = dispatch(file.instance, UInt32(truncatingIfNeeded: request), argument, task: task)
        execute(GVisorKcovModel.ioctlExitBlocks)
        return result
    }

    /// The request is compared as a `uint32` (`kcovFD.Ioctl`); FIOCLEX and FIONCLEX are answered
    /// by the ioctl syscall for every fd before the file sees them.
    private func dispatch(_ instance: GVisorKcovInstance, _ request: UInt32, _ argument: UInt, task: GVisorTask) -> CInt {
        typealias Request = GVisorKcovModel.Request
        switch UInt(request) {
        case Request.closeOnExec, Request.noCloseOnExec: return 0
        case Request.initTrace: return initTrace(instance, words: UInt64(argument))
        case Request.enable: return enable(instance, UInt8(truncatingIfNeeded: argument), task: task)
        case Request.disable: return argument != 0 ? EINVAL : disable(instance, task: task)
        default: return ENOTTY
        }
    }

    /// Docs/kcov-gvisor.md#kcov_init_trace: state, then alignment (`8 * size` a multiple of 4096, in wrapping u64), then range.
    /// No memory yet.
    private func initTrace(_ instance: GVisorKcovInstance, words: UInt64) -> CInt {
        guard instance.mode == .disabled else { return EBUSY }
        guard (words &* 8) & UInt64(GVisorKcovModel.kcovPageBytes - 1) == 0 else { return EINVAL }
        guard words >= 2, words <= GVisorKcovModel.maxWords else { return EINVAL }
        instance.sizeWords = words
        instance.mode = .initialized
        return 0
    }

    /// Docs/kcov-gvisor.md#kcov_enable: state and buffer, then the trace kind (argument truncated to 8 bits), then the busy
    /// check that cannot fire. No check that the task already traces another fd: `Task.kcov` is
    /// overwritten. Clears everyone's pending coverage. Does not touch `area[0]`.
    private func enable(_ instance: GVisorKcovInstance, _ kind: UInt8, task: GVisorTask) -> CInt {
        guard instance.mode == .initialized, instance.memory != nil else { return EINVAL }
        switch kind {
        case 0: break
        case 1: return EOPNOTSUPP
        default: return EINVAL
        }
        instance.mode = .tracePC
        // gVisor's `owningTask != nil && owningTask != t` → EBUSY, after the mode is set. INIT
        // implies no owner, so this never fires [inferred]; kept for the order.
        if let owner = instance.owner, owner !== task { return EBUSY }
        instance.owner = task
        task.kcov = instance
        task.work.append(instance)
        clearCoverage()
        return 0
    }

    /// Docs/kcov-gvisor.md#kcov_disable (the argument was checked by the caller): only the owner; back to INIT, and the
    /// buffer is dropped. `Task.kcov` stays.
    private func disable(_ instance: GVisorKcovInstance, task: GVisorTask) -> CInt {
        guard instance.owner === task else { return EINVAL }
        instance.mode = .initialized
        instance.owner = nil
        dropMemory(instance)
        return 0
    }

    // MARK: mmap (Docs/kcov-gvisor.md#mmap)

    /// In gVisor's order: map type, fd, readability, then kcov's `ConfigureMMap` (mode, first
    /// allocation), then the memory manager's checks (length, offset, overflow, write permission).
    /// So a mapping refused by the memory manager still leaves the buffer allocated.
    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int, task: GVisorTask)
        -> Result<UnsafeMutableRawPointer, Errno>
    {
        let shared = flags & MAP_SHARED != 0
        let isPrivate = flags & MAP_PRIVATE != 0
        // Exactly one of MAP_PRIVATE and MAP_SHARED; MAP_SHARED_VALIDATE has both bits.
        guard shared != isPrivate else { return .failure(Errno(EINVAL)) }
        // The model maps only its own device.
        guard flags & MAP_ANONYMOUS == 0 else { return .failure(Errno(EINVAL)) }
        guard let file = descriptors[fd] else { return .failure(Errno(EBADF)) }
        guard file.readable else { return .failure(Errno(EACCES)) }
        let writeAllowed = !shared || file.writable

        // ConfigureMMap.
        let instance = file.instance
        guard instance.mode == .initialized else { return .failure(Errno(EINVAL)) }
        if instance.memory == nil {
            switch GVisorKcovMemory.allocate(words: Int(instance.sizeWords), name: "kcov:\(task.tid)") {
            case .success(let memory):
                instance.memory = memory
                liveBuffers += 1
            case .failure(let error):
                return .failure(error)
            }
        }
        let memory = instance.memory!

        // MemoryManager.MMap.
        guard length != 0 else { return .failure(Errno(EINVAL)) }
        let requested = UInt64(UInt(bitPattern: length))
        let page = UInt64(pageSize)
        guard requested <= UInt64.max - (page - 1) else { return .failure(Errno(ENOMEM)) }
        let rounded = (requested + page - 1) / page * page
        let start = UInt64(UInt(bitPattern: offset))
        guard start % page == 0 else { return .failure(Errno(EINVAL)) }
        guard start <= UInt64.max - rounded else { return .failure(Errno(EOVERFLOW)) }
        guard writeAllowed || protection & PROT_WRITE == 0 else { return .failure(Errno(EACCES)) }
        guard rounded <= UInt64(Int.max) else { return .failure(Errno(ENOMEM)) }

        // A real mapping of the buffer's memfd; an offset the host cannot map fails with its errno.
        guard let address = hostMap(Int(rounded), protection, shared ? MAP_SHARED : MAP_PRIVATE, memory.file, offset) else {
            return .failure(Errno(errno))
        }
        mappings[UInt(bitPattern: address)] = GVisorUserMapping(memory: memory, bytes: Int(rounded))
        memory.mappings += 1
        return .success(address)
    }

    /// Unmaps one whole mapping from ``mmap(length:protection:flags:fd:offset:)``.
    func munmap(_ key: UInt, length: Int) -> CInt {
        guard key % UInt(pageSize) == 0, length > 0, length <= Int.max - pageSize else { return EINVAL }
        let rounded = (length + pageSize - 1) / pageSize * pageSize
        guard let mapping = mappings[key], mapping.bytes == rounded else { return EINVAL }
        mappings[key] = nil
        hostUnmap(key, rounded)
        mapping.memory.mappings -= 1
        freeIfUnreferenced(mapping.memory)
        return 0
    }

    /// Unmaps and frees everything still allocated (the model itself is going away).
    func tearDown() {
        for (key, mapping) in mappings {
            hostUnmap(key, mapping.bytes)
            mapping.memory.mappings -= 1
            freeIfUnreferenced(mapping.memory)
        }
        mappings = [:]
        for file in descriptors.values {
            dropMemory(file.instance)
            file.instance.owner = nil
        }
        // A task and the Kcov it enabled point at each other (Task.kcov, task work ↔ owningTask):
        // both links go, or neither object is ever freed.
        for task in tasks.values {
            if let instance = task.kcov {
                dropMemory(instance)
                instance.owner = nil
            }
            for instance in task.work {
                dropMemory(instance)
                instance.owner = nil
            }
            task.kcov = nil
            task.work = []
        }
        descriptors = [:]
        tasks = [:]
    }
}

/// mmap(2) of the host, for code inside types that have their own `mmap`.
private func hostMap(_ length: Int, _ protection: CInt, _ flags: CInt, _ file: CInt, _ offset: Int) -> UnsafeMutableRawPointer? {
    let address = mmap(nil, length, protection, flags, file, off_t(offset))
    return address == MAP_FAILED ? nil : address
}

/// munmap(2) of the host.
private func hostUnmap(_ address: UInt, _ length: Int) {
    _ = munmap(UnsafeMutableRawPointer(bitPattern: address), length)
}
