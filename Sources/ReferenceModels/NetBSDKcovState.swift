#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KernelSeam
import Synchronization

// The simulated NetBSD kernel behind `NetBSDKcovModel`. Citations are anchors in
// `Docs/kcov-netbsd.md`. Every type here is used only under the model's lock, so none of them is
// Sendable.

/// A coverage buffer: the anonymous UVM object `uao_create` makes and the kernel wires (Docs/kcov-netbsd.md#kcov_ioc_setbufsize,
/// step 5), here an anonymous private mapping of `bufsize` bytes, so it is page-aligned
/// and zero-filled. Bound once to `Atomic<UInt64>`: the model writes with relaxed atomic stores and
/// clients read with relaxed atomic loads.
///
/// Reference counted like the uobj: the descriptor holds one reference and every user mapping one
/// more (`uao_reference` in `kcov_fops_mmap`, Docs/kcov-netbsd.md#mmap), so a mapping outlives `close`.
final class NetBSDKcovBuffer {
    let base: UnsafeMutableRawPointer
    /// `nent`, as given to SETBUFSIZE.
    let entries: Int
    /// `bufsize = roundup(nent * 8, PAGE_SIZE)`.
    let bytes: Int
    /// Buffers of registered remotes are the kernel's own and are not counted as live user buffers.
    let userBuffer: Bool
    var references = 1
    private(set) var isFreed = false
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>

    /// `nil` when the memory cannot be had (the `uvm_map` error, ENOMEM).
    init?(entries: Int, pageSize: Int, userBuffer: Bool) {
        let bytes = (entries * 8 + pageSize - 1) / pageSize * pageSize
        guard let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              address != MAP_FAILED
        else { return nil }
        base = address
        self.entries = entries
        self.bytes = bytes
        self.userBuffer = userBuffer
        slots = address.bindMemory(to: Atomic<UInt64>.self, capacity: bytes / 8)
    }

    /// `bufnent = nent - 1`: the kernel-private bound every hook checks against.
    var bufnent: UInt64 { UInt64(entries - 1) }
    /// Words of real memory behind the buffer (the page-rounded size).
    var words: Int { bytes / 8 }

    subscript(index: Int) -> UInt64 {
        get { slots[index].load(ordering: .relaxed) }
        set { slots[index].store(newValue, ordering: .relaxed) }
    }

    /// Drops one reference; the last frees the memory. Returns whether it did.
    func release() -> Bool {
        precondition(!isFreed && references > 0, "kcov buffer released after it was freed")
        references -= 1
        guard references == 0 else { return false }
        isFreed = true
        _ = munmap(base, bytes)
        return true
    }

    /// Frees the memory whatever the count (the model itself is going away).
    func tearDown() {
        guard !isFreed else { return }
        isFreed = true
        references = 0
        _ = munmap(base, bytes)
    }

    // MARK: Recording (Docs/kcov-netbsd.md#buffer-layout)

    /// `__sanitizer_cov_trace_pc`: `idx = buf[0]`; only if `idx < bufnent` the PC goes to
    /// `buf[idx + 1]` and then the count becomes `idx + 1`. A full buffer, or a user-written count
    /// at or past `bufnent`, drops the PC and leaves the count alone. Returns whether it was written.
    @discardableResult
    func recordPC(_ pc: UInt64) -> Bool {
        let index = self[0]
        guard index < bufnent else { return false }
        self[Int(index) + 1] = pc
        self[0] = index + 1
        return true
    }

    /// `trace_cmp`: `idx = buf[0]`; only if `idx * 4 + 4 <= bufnent` (uint64 arithmetic, which
    /// wraps) the four words go to `buf[idx*4+1 ... idx*4+4]` and then the count becomes `idx + 1`.
    ///
    /// The wrap is real: a user-written count `idx ≡ 2^62 - 1 (mod 2^62)` makes `idx * 4 + 4` zero,
    /// so the check passes and the kernel's indices `idx*4+1 … idx*4+3` point 3 words *before* the
    /// buffer, while the PC lands in `buf[0]`. The model cannot write outside its allocation; it
    /// computes every index the same way, stores each word that lands inside the buffer and
    /// returns how many would have landed outside (0 in every sane case).
    func recordComparison(_ record: NetBSDKcovModel.Comparison) -> (written: Bool, outOfBounds: Int) {
        let index = self[0]
        guard index &* 4 &+ 4 <= bufnent else { return (false, 0) }
        var outside = 0
        for (offset, word) in record.words.enumerated() {
            let position = index &* 4 &+ UInt64(offset + 1)
            if position < UInt64(words) {
                self[Int(position)] = word
            } else {
                outside += 1
            }
        }
        self[0] = index &+ 1
        return (true, outside)
    }
}

/// `struct kcov_desc` (Docs/kcov-netbsd.md#device-and-open): one per open, shared by every fd `dup`/`dup2`/fork gives the file.
final class NetBSDKcovDesc {
    /// Free the descriptor when the owning LWP is freed (set by close while enabled, Docs/kcov-netbsd.md#close-while-enabled).
    var lwpfree = false
    /// The registered remote this descriptor is attached to (REMOTE_ATTACH, Docs/kcov-netbsd.md#kcov_ioc_remote_attach).
    var remote: NetBSDKcovRemote?
    /// `buf`/`uobj`/`bufnent`/`bufsize`.
    var buffer: NetBSDKcovBuffer?
    var mode: NetBSDKcovModel.Mode = .none
    var enabled = false
    /// Not in the kernel's struct (the kernel keeps the binding in `l_kcov` only): the tid of the
    /// LWP that enabled it, for inspection. `nil` for remote descriptors and once it is disabled.
    var ownerTID: CInt?
    private(set) var isFreed = false

    /// `kcov_free`: the descriptor's reference on the buffer goes. Returns whether a user buffer was freed.
    func free() -> Bool {
        precondition(!isFreed, "kcov descriptor freed twice")
        isFreed = true
        remote = nil
        guard let buffer else { return false }
        self.buffer = nil
        return buffer.release() && buffer.userBuffer
    }
}

/// A `kcov_remote_register(subsystem, id)` registration with its kernel-owned descriptor and
/// full-size buffer (Docs/kcov-netbsd.md#remote-coverage).
final class NetBSDKcovRemote {
    let subsystem: UInt64
    let id: UInt64
    let desc: NetBSDKcovDesc

    init(subsystem: UInt64, id: UInt64, desc: NetBSDKcovDesc) {
        self.subsystem = subsystem
        self.id = id
        self.desc = desc
    }
}

/// A `file_t` made by `fd_clone` in `kcov_open`: its `f_data` is the descriptor until the last
/// reference closes it (Docs/kcov-netbsd.md#device-and-open). References are the fds of this process and of forked children.
final class NetBSDKcovFile {
    /// `fp->f_data`; `nil` once `kcov_fops_close` ran.
    var desc: NetBSDKcovDesc?
    var references = 1

    init(desc: NetBSDKcovDesc) { self.desc = desc }
}

/// What `struct lwp` holds for kcov: `l_kcov` (Docs/kcov-netbsd.md#device-and-open, `sys/sys/lwp.h`).
final class NetBSDLWP {
    let tid: CInt
    var kcov: NetBSDKcovDesc?

    init(tid: CInt) { self.tid = tid }
}

/// Where a user mapping starts (page-aligned) and its page-rounded length.
struct NetBSDMappingKey: Hashable {
    let address: UInt
    let bytes: Int
}

/// User mappings with the same start and length (the model hands out the buffer's own memory, so
/// two mappings of one range share an address); each holds one buffer reference.
struct NetBSDKcovMapping {
    let buffer: NetBSDKcovBuffer
    var count: Int
}

/// A forked child that has exited but was not reaped yet: its last LWP (an exited-LWP token) is
/// not freed until then (Docs/kcov-netbsd.md#thread-exit).
struct NetBSDZombieChild {
    let lwpToken: Int
    let status: ExitStatus
}

/// The whole simulated kernel: fd table, LWPs, mappings, remote registrations, children.
final class NetBSDKcovKernel {
    typealias Model = NetBSDKcovModel

    let revision: Model.Revision
    let pageSize: Int
    let descriptorLimit: Int
    var descriptors: [CInt: NetBSDKcovFile] = [:]
    /// Live LWPs that have kcov state (`l_kcov != NULL` at some point), keyed by tid.
    var lwps: [CInt: NetBSDLWP] = [:]
    var mappings: [NetBSDMappingKey: NetBSDKcovMapping] = [:]
    var remotes: [Model.RemoteTarget: NetBSDKcovRemote] = [:]
    /// LWPs that exited and wait to be freed (joined or reaped), by token.
    var exitedLWPs: [Int: NetBSDLWP] = [:]
    /// The fd tables of forked children that have not exited, by token.
    var forkedFiles: [Int: [NetBSDKcovFile]] = [:]
    var nextToken = 1
    var zombies: [CInt: NetBSDZombieChild] = [:]
    var nextPid: CInt = 200_000
    var liveBuffers = 0
    var liveDescs = 0
    var outOfBoundsWrites = 0

    static let firstDescriptor: CInt = 2000

    init(revision: Model.Revision, vhciBuses: Int, descriptorLimit: Int) {
        self.revision = revision
        self.descriptorLimit = descriptorLimit
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        // vhci_attach: one registration per port of each bus, each with a full-size buffer (Docs/kcov-netbsd.md#remote-coverage).
        // Only kernels with the remote ioctls (kcov.h 1.9, after NetBSD 9) have them.
        guard revision == .current else { return }
        for bus in 0..<vhciBuses {
            for port in 0..<Model.vhciPortsPerBus {
                let target = Model.RemoteTarget.vhci(bus: UInt32(bus), port: UInt32(port))
                let desc = NetBSDKcovDesc()
                desc.buffer = NetBSDKcovBuffer(entries: Model.maxEntries, pageSize: pageSize, userBuffer: false)
                precondition(desc.buffer != nil, "cannot allocate a remote kcov buffer")
                remotes[target] = NetBSDKcovRemote(subsystem: target.subsystem, id: target.id, desc: desc)
            }
        }
    }

    // MARK: LWPs and recording

    /// `curlwp->l_kcov` of `tid`.
    func binding(of tid: CInt) -> NetBSDKcovDesc? { lwps[tid]?.kcov }

    /// The sanitizer hooks of `path` running on an LWP whose `l_kcov` is `desc` (Docs/kcov-netbsd.md#buffer-layout): nothing
    /// unless it is enabled, then PCs in TRACE_PC, records in TRACE_CMP, nothing in NONE. Returns
    /// how many entries were appended.
    @discardableResult
    func record(_ path: Model.KernelPath, into desc: NetBSDKcovDesc) -> Int {
        guard desc.enabled, let buffer = desc.buffer else { return 0 }
        switch desc.mode {
        case .none:
            return 0
        case .tracePC:
            return path.pcs.reduce(0) { $0 + (buffer.recordPC($1) ? 1 : 0) }
        case .traceCMP:
            var appended = 0
            for comparison in path.comparisons {
                let result = buffer.recordComparison(comparison)
                if result.written { appended += 1 }
                outOfBoundsWrites += result.outOfBounds
            }
            return appended
        }
    }

    /// Kernel code executed by `tid` (a syscall path): recorded if its `l_kcov` is enabled.
    func record(_ path: Model.KernelPath, for tid: CInt) {
        guard let desc = binding(of: tid) else { return }
        record(path, into: desc)
    }

    /// The LWP `tid` exits: it stops being anyone's `curlwp` (a new thread with the same tid starts
    /// fresh), but its `l_kcov` stays until it is freed. Returns the token that frees it.
    func exitLWP(_ tid: CInt) -> Int {
        let token = nextToken
        nextToken += 1
        exitedLWPs[token] = lwps.removeValue(forKey: tid) ?? NetBSDLWP(tid: tid)
        return token
    }

    /// Frees the exited LWP of `token` (a join or a reap). Idempotent.
    func freeExitedLWP(_ token: Int) {
        guard let lwp = exitedLWPs.removeValue(forKey: token) else { return }
        freeLWP(lwp)
    }

    /// `lwp_free` → `kcov_lwp_free` (Docs/kcov-netbsd.md#thread-exit): an enabled descriptor bound to the LWP is disabled,
    /// and freed if `lwpfree` was set by a close. Idempotent.
    func freeLWP(_ lwp: NetBSDLWP) {
        guard let desc = lwp.kcov else { return }
        lwp.kcov = nil
        desc.enabled = false
        desc.ownerTID = nil
        if desc.lwpfree { freeDesc(desc) }
    }

    private func freeDesc(_ desc: NetBSDKcovDesc) {
        if desc.free() { liveBuffers -= 1 }
        liveDescs -= 1
    }

    // MARK: Descriptors

    private var descriptorRange: Range<CInt> {
        Self.firstDescriptor..<(Self.firstDescriptor + CInt(descriptorLimit))
    }

    private func lowestFreeDescriptor() -> CInt? {
        descriptorRange.first { descriptors[$0] == nil }
    }

    /// `kcov_open` (Docs/kcov-netbsd.md#device-and-open): `fd_allocfile` (EMFILE when the table is full), a zeroed descriptor.
    func open() -> CInt {
        guard let fd = lowestFreeDescriptor() else { return -EMFILE }
        descriptors[fd] = NetBSDKcovFile(desc: NetBSDKcovDesc())
        liveDescs += 1
        return fd
    }

    /// `dup(2)`: the lowest free fd shares the file.
    func dup(_ fd: CInt) -> CInt {
        guard let file = descriptors[fd] else { return -EBADF }
        guard let target = lowestFreeDescriptor() else { return -EMFILE }
        descriptors[target] = file
        file.references += 1
        return target
    }

    /// `dup2(2)`: `target` (which must lie in the model's fd table) shares the file; a file open
    /// at `target` is closed first.
    func dup2(_ fd: CInt, _ target: CInt) -> CInt {
        guard let file = descriptors[fd], descriptorRange.contains(target) else { return -EBADF }
        guard target != fd else { return fd }
        if let previous = descriptors.removeValue(forKey: target) { drop(previous) }
        descriptors[target] = file
        file.references += 1
        return target
    }

    /// close(2): the fd goes; the last reference to the file runs `kcov_fops_close`.
    func close(_ fd: CInt) -> CInt {
        guard let file = descriptors.removeValue(forKey: fd) else { return EBADF }
        drop(file)
        return 0
    }

    /// One reference to `file` goes (an fd closed, or a forked child's fd table freed).
    func drop(_ file: NetBSDKcovFile) {
        file.references -= 1
        guard file.references == 0, let desc = file.desc else { return }
        file.desc = nil
        closeDesc(desc)
    }

    /// `kcov_fops_close` (Docs/kcov-netbsd.md#close-while-enabled, Docs/kcov-netbsd.md#check-order): an attached remote is disabled; an enabled descriptor is
    /// left to its LWP (tracing continues); anything else is freed now. Always succeeds.
    private func closeDesc(_ desc: NetBSDKcovDesc) {
        if let remote = desc.remote { remote.desc.enabled = false }
        if desc.enabled {
            desc.lwpfree = true
        } else {
            freeDesc(desc)
        }
    }

    /// A fork: the child's fd table refers to every open file. Returns the token of that table.
    func fork() -> Int {
        var seen = Set<ObjectIdentifier>()
        let files = descriptors.values.filter { seen.insert(ObjectIdentifier($0)).inserted }
        for file in files { file.references += 1 }
        let token = nextToken
        nextToken += 1
        forkedFiles[token] = files
        return token
    }

    /// A forked child exits: its fd table is freed (`fd_free` in `exit1`), before its LWP exits.
    func childExit(_ token: Int) {
        for file in forkedFiles.removeValue(forKey: token) ?? [] { drop(file) }
    }

    /// A child exited with `status`; its last LWP waits for the reap. Returns its pid.
    func addZombie(lwpToken: Int, status: ExitStatus) -> CInt {
        let pid = nextPid
        nextPid += 1
        zombies[pid] = NetBSDZombieChild(lwpToken: lwpToken, status: status)
        return pid
    }

    /// wait(2): the child's last LWP is freed (`lwp_free`, Docs/kcov-netbsd.md#thread-exit). `nil` for an unknown pid.
    func reap(_ pid: CInt) -> ExitStatus? {
        guard let child = zombies.removeValue(forKey: pid) else { return nil }
        freeExitedLWP(child.lwpToken)
        return child.status
    }

    // MARK: ioctl (Docs/kcov-netbsd.md#ioctls)

    func ioctl(_ fd: CInt, _ request: UInt, _ argument: ModelIoctlArgument, tid: CInt) -> CInt {
        guard let file = descriptors[fd] else {
            record(Model.syscallPath, for: tid)
            return EBADF
        }
        record(Model.ioctlEntryPath, for: tid)
        let result = genericIoctl(file, request, argument, tid: tid)
        record(Model.ioctlExitPath, for: tid)
        return result
    }

    /// `sys_ioctl`: an IOC_IN request has its IOCPARM_LEN bytes copied in from the argument (the
    /// address, whether passed as a pointer or as a value) before the driver runs, so a bad address
    /// is EFAULT whatever the request; IOC_VOID passes the argument through unread.
    private func genericIoctl(_ file: NetBSDKcovFile, _ request: UInt, _ argument: ModelIoctlArgument, tid: CInt) -> CInt {
        var data = ModelIoctlData(bytes: [])
        let length = Int((request >> 16) & UInt(Model.ioctlParameterMask))
        if request & UInt(Model.iocIn) != 0, length > 0 {
            switch copyIn(argument, count: length) {
            case .success(let bytes): data = ModelIoctlData(bytes: bytes)
            case .failure(let error): return error.code
            }
        }
        // kcov_fops_ioctl: f_data is only NULL in a close race, which the model's lock excludes.
        guard let desc = file.desc else { return ENXIO }
        return dispatch(desc, request, data, tid: tid)
    }

    private func dispatch(_ desc: NetBSDKcovDesc, _ request: UInt, _ data: ModelIoctlData, tid: CInt) -> CInt {
        let remoteIoctls = revision == .current
        switch request {
        case Model.Request.setBufferSize: return setBufferSize(desc, entries: data.uint64(at: 0))
        case Model.Request.enable: return enable(desc, rawMode: data.int32(at: 0), tid: tid)
        case Model.Request.disable: return disable(desc, tid: tid)
        case Model.Request.remoteAttach where remoteIoctls:
            return remoteAttach(desc, subsystem: data.uint64(at: 0), id: data.uint64(at: 8))
        case Model.Request.remoteDetach where remoteIoctls: return remoteDetach(desc)
        default: return EINVAL
        }
    }

    /// `kcov_setbufsize` → `kcov_allocbuf` (Docs/kcov-netbsd.md#kcov_ioc_setbufsize): remote (a no-op), enabled, size, existing buffer.
    private func setBufferSize(_ desc: NetBSDKcovDesc, entries: UInt64) -> CInt {
        guard desc.remote == nil else { return 0 }
        guard !desc.enabled else { return EBUSY }
        guard entries >= 2, entries <= UInt64(Model.maxEntries) else { return EINVAL }
        guard desc.buffer == nil else { return EEXIST }
        guard let buffer = NetBSDKcovBuffer(entries: Int(entries), pageSize: pageSize, userBuffer: true) else {
            return ENOMEM
        }
        desc.buffer = buffer
        liveBuffers += 1
        return 0
    }

    /// `kcov_enable` (Docs/kcov-netbsd.md#kcov_ioc_enable). 1.17: mode, remote, enabled, `l_kcov`, buffer. 1.8: enabled,
    /// `l_kcov`, buffer, mode (no remote).
    private func enable(_ desc: NetBSDKcovDesc, rawMode: Int32, tid: CInt) -> CInt {
        let mode = Model.Mode(rawValue: rawMode)
        switch revision {
        case .current:
            guard let mode else { return EINVAL }
            if let remote = desc.remote {
                guard !remote.desc.enabled else { return EBUSY }
                remote.desc.mode = mode
                remote.desc.enabled = true
                return 0
            }
            guard !desc.enabled, binding(of: tid) == nil else { return EBUSY }
            guard desc.buffer != nil else { return ENOBUFS }
            bind(desc, mode: mode, tid: tid)
        case .netbsd9:
            guard !desc.enabled, binding(of: tid) == nil else { return EBUSY }
            guard desc.buffer != nil else { return ENOBUFS }
            guard let mode else { return EINVAL }
            bind(desc, mode: mode, tid: tid)
        }
        return 0
    }

    private func bind(_ desc: NetBSDKcovDesc, mode: NetBSDKcovModel.Mode, tid: CInt) {
        let lwp = lwps[tid] ?? NetBSDLWP(tid: tid)
        lwps[tid] = lwp
        lwp.kcov = desc
        desc.mode = mode
        desc.enabled = true
        desc.ownerTID = tid
    }

    /// `kcov_disable` (Docs/kcov-netbsd.md#kcov_ioc_disable): remote (any LWP), not enabled, not the owner. The mode is left stale.
    private func disable(_ desc: NetBSDKcovDesc, tid: CInt) -> CInt {
        if let remote = desc.remote {
            guard remote.desc.enabled else { return ENOENT }
            remote.desc.enabled = false
            return 0
        }
        guard desc.enabled else { return ENOENT }
        guard let lwp = lwps[tid], lwp.kcov === desc else { return ENOENT }
        lwp.kcov = nil
        desc.enabled = false
        desc.ownerTID = nil
        return 0
    }

    /// `kcov_remote_attach` (Docs/kcov-netbsd.md#kcov_ioc_remote_attach): local enable, then registration. Re-attaching re-points.
    private func remoteAttach(_ desc: NetBSDKcovDesc, subsystem: UInt64, id: UInt64) -> CInt {
        guard !desc.enabled else { return EEXIST }
        guard let remote = remotes[Model.RemoteTarget(subsystem: subsystem, id: id)] else { return ENOENT }
        desc.remote = remote
        return 0
    }

    /// `kcov_remote_detach` (Docs/kcov-netbsd.md#kcov_ioc_remote_detach): local enable, then attachment; the remote is disabled.
    private func remoteDetach(_ desc: NetBSDKcovDesc) -> CInt {
        guard !desc.enabled else { return EEXIST }
        guard let remote = desc.remote else { return ENOENT }
        remote.desc.enabled = false
        desc.remote = nil
        return 0
    }

    // MARK: mmap (Docs/kcov-netbsd.md#mmap)

    func mmap(length: Int, protection: CInt, flags: CInt, fd: CInt, offset: Int) -> Result<UnsafeMutableRawPointer, Errno> {
        // sys_mmap: the fd, a length, one of MAP_SHARED / MAP_PRIVATE; the position is aligned
        // down to a page and the length grown by the same amount and rounded up (N-MMAP).
        guard let file = descriptors[fd] else { return .failure(Errno(EBADF)) }
        guard length > 0 else { return .failure(Errno(EINVAL)) }
        let kind = flags & (MAP_SHARED | MAP_PRIVATE)
        guard kind == MAP_SHARED || kind == MAP_PRIVATE else { return .failure(Errno(EINVAL)) }
        let pageOffset = offset & (pageSize - 1)
        let position = offset - pageOffset
        guard length <= Int.max - pageOffset - pageSize else { return .failure(Errno(EINVAL)) }
        let size = (length + pageOffset + pageSize - 1) / pageSize * pageSize
        // kcov_fops_mmap, in order.
        guard protection & PROT_EXEC == 0 else { return .failure(Errno(EACCES)) }
        guard position >= 0 else { return .failure(Errno(EINVAL)) }
        guard size <= Model.maxBufferBytes else { return .failure(Errno(EINVAL)) }
        guard position <= Model.maxBufferBytes else { return .failure(Errno(EINVAL)) }
        guard let desc = file.desc else { return .failure(Errno(ENXIO)) }
        let target = desc.remote?.desc ?? desc
        guard let buffer = target.buffer, size + position <= buffer.bytes else { return .failure(Errno(ENOMEM)) }
        buffer.references += 1
        let start = buffer.base + position
        let key = NetBSDMappingKey(address: UInt(bitPattern: start), bytes: size)
        mappings[key, default: NetBSDKcovMapping(buffer: buffer, count: 0)].count += 1
        return .success(start + pageOffset)
    }

    /// munmap(2) of one whole mapping (the address is aligned down and the length rounded as
    /// NetBSD does); anything else is EINVAL in the model.
    func munmap(_ address: UInt, length: Int) -> CInt {
        let pageOffset = Int(address & UInt(pageSize - 1))
        guard length > 0, length <= Int.max - pageOffset - pageSize else { return EINVAL }
        let size = (length + pageOffset + pageSize - 1) / pageSize * pageSize
        let key = NetBSDMappingKey(address: address - UInt(pageOffset), bytes: size)
        guard var mapping = mappings[key] else { return EINVAL }
        mapping.count -= 1
        mappings[key] = mapping.count == 0 ? nil : mapping
        if mapping.buffer.release(), mapping.buffer.userBuffer { liveBuffers -= 1 }
        return 0
    }

    // MARK: Remote sections (Docs/kcov-netbsd.md#remote-coverage)

    /// A kernel LWP running a `kcov_remote_enter` … `kcov_remote_leave` section for `target`:
    /// `nil` if nothing is registered there; otherwise it binds the remote descriptor only if it
    /// is enabled and records `path` into the remote buffer.
    func runRemoteSection(_ target: Model.RemoteTarget, path: Model.KernelPath) -> Int? {
        guard let remote = remotes[target] else { return nil }
        guard remote.desc.enabled else { return 0 }
        return record(path, into: remote.desc)
    }

    // MARK: Process exit

    /// The whole process exits: the fd table is freed (closing each file's last reference), the
    /// address space goes (every mapping), the LWPs are freed, and unreaped children are reaped by
    /// init.
    func exitProcess() {
        for fd in descriptors.keys.sorted() { _ = close(fd) }
        for (key, mapping) in mappings {
            for _ in 0..<mapping.count { _ = munmap(key.address, length: key.bytes) }
        }
        for token in forkedFiles.keys.sorted() { childExit(token) }
        for lwp in lwps.values { freeLWP(lwp) }
        lwps = [:]
        for token in exitedLWPs.keys.sorted() { freeExitedLWP(token) }
        zombies = [:]
    }

    /// Frees every buffer still allocated (the model itself is going away).
    func tearDown() {
        var buffers: [NetBSDKcovBuffer] = []
        buffers += descriptors.values.compactMap { $0.desc?.buffer }
        buffers += mappings.values.map(\.buffer)
        buffers += lwps.values.compactMap { $0.kcov?.buffer }
        buffers += exitedLWPs.values.compactMap { $0.kcov?.buffer }
        buffers += remotes.values.compactMap(\.desc.buffer)
        for buffer in buffers { buffer.tearDown() }
        descriptors = [:]
        mappings = [:]
        lwps = [:]
        exitedLWPs = [:]
        forkedFiles = [:]
        zombies = [:]
        remotes = [:]
    }
}
