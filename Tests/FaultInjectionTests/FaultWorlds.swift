import CoverageAPI
import FreeBSDBackend
import GVisorBackend
import KernelSeam
import KprobeBackend
import LinuxBackend
import NetBSDBackend
import OpenBSDBackend
import ReferenceModels
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

// The models behind fault-injecting wrappers, one fresh world per run, and the errnos each kind of
// call is swept with.

/// A kcov backend over a fresh model behind a ``FaultInjectingKernel``.
struct KcovWorld: Sendable {
    let backend: any KcovDriver
    /// Runs `body` on a new thread of the model and runs the model's thread-exit path after it.
    let onThread: @Sendable (@escaping @Sendable () -> CoverageError?) -> CoverageError?
    /// Descriptors, mappings and buffers the model holds.
    let held: @Sendable () -> [String: Int]
    /// The remote target the backend supports, and kernel work attached to it; `nil` without remote coverage.
    let remote: (request: RemoteRequest, work: @Sendable () -> Void)?
}

/// One kcov kernel: its name, modes, and how to build a world over a plan.
struct KcovKind: Sendable {
    let name: String
    let modes: [CoverageMode]
    let make: @Sendable (FaultPlan) -> KcovWorld
}

enum Kernels {
    static let linux = KcovKind(name: "linux", modes: [.pc, .comparisons]) { plan in
        let model = LinuxKcovModel()
        let handle = LinuxKcovModel.subsystemCommon | 7
        return KcovWorld(
            backend: LinuxKcovBackend(kernel: FaultInjectingKernel(model, plan: plan)),
            onThread: { model.runOnNewThread($0) },
            held: { ["fds": model.openDescriptorCount, "mappings": model.liveMappingCount, "buffers": model.liveBufferCount] },
            remote: (RemoteRequest(targets: [.common(instance: 7)], sectionWords: 512), { _ = model.runRemoteSection(handle: handle) }))
    }

    static let netbsd = KcovKind(name: "netbsd", modes: [.pc, .comparisons]) { plan in
        let model = NetBSDKcovModel()
        return KcovWorld(
            backend: NetBSDKcovBackend(kernel: FaultInjectingKernel(model, plan: plan)),
            onThread: { model.runOnNewThread($0) },
            held: { ["fds": model.openDescriptorCount, "mappings": model.liveMappingCount, "buffers": model.liveBufferCount] },
            remote: (RemoteRequest(targets: [.vhciPort(bus: 0, port: 1)], sectionWords: 512), { _ = model.runRemoteSection(.vhci(bus: 0, port: 1)) }))
    }

    static let freebsd = KcovKind(name: "freebsd", modes: [.pc, .comparisons]) { plan in
        let model = FreeBSDKcovModel()
        return KcovWorld(
            backend: FreeBSDKcovBackend(kernel: FaultInjectingKernel(model, plan: plan)),
            onThread: { model.runOnNewThread($0) },
            held: { ["fds": model.openDescriptorCount, "mappings": model.liveMappingCount, "buffers": model.liveBufferCount] },
            remote: nil)
    }

    static let openbsd = KcovKind(name: "openbsd", modes: [.pc, .comparisons]) { plan in
        let model = OpenBSDKcovModel()
        return KcovWorld(
            backend: OpenBSDKcovBackend(kernel: FaultInjectingKernel(model, plan: plan)),
            onThread: { model.runOnNewThread($0) },
            held: { ["fds": model.openDescriptorCount, "mappings": model.liveMappingCount, "buffers": model.liveBufferCount] },
            remote: (RemoteRequest(targets: [.common(instance: 0)], sectionWords: 0), { _ = model.runKernelTask() }))
    }

    static let gvisor = KcovKind(name: "gvisor", modes: [.pc]) { plan in
        let model = GVisorKcovModel()
        return KcovWorld(
            backend: GVisorKcovBackend(kernel: FaultInjectingKernel(model, plan: plan)),
            onThread: { model.runOnNewThread($0) },
            held: { ["fds": model.openDescriptorCount, "mappings": model.liveMappingCount, "buffers": model.liveBufferCount] },
            remote: nil)
    }

    static let kcov = [linux, netbsd, freebsd, openbsd, gvisor]

    /// The kprobe backend over a fresh PMU model behind a ``FaultInjectingKprobeKernel``; the
    /// model knows `/bin/true` as a program that enters `vfs_open` and `ksys_read`.
    static func kprobe(_ plan: FaultPlan) -> (backend: KprobeBackend, held: () -> [String: Int]) {
        let model = KprobePMUModel()
        model.programs["/bin/true"] = ["vfs_open", "ksys_read", "ksys_read"]
        return (KprobeBackend(kernel: FaultInjectingKprobeKernel(model, plan: plan)), { ["probes": model.liveProbes, "children": model.unreapedChildren] })
    }
}

/// The errnos each kind of call is swept with: every errno the kernels' tables give for that call
/// (Docs/kcov-linux.md, kcov-netbsd.md, kcov-freebsd.md, kcov-openbsd.md, kcov-gvisor.md ioctl and
/// open tables; the backends' ErrnoMeaning tables), plus the generic ones the call can give any
/// caller (EINTR, ENOMEM, EMFILE, ENFILE, EFAULT where the call takes user memory).
///
/// Left out on purpose, because only a bug in KernelCoverage can produce them and the library
/// traps on them by contract (KcovDriver's requirements; ``FaultContractTests`` checks each trap
/// in a child process): EBADF and EFAULT from a kcov ioctl (IoctlErrors), EBADF from close
/// (closeDevice: a double close), and every munmap errno (unmapBuffer: a whole mapping the
/// library made can only fail to unmap if the library passed the wrong address or length).
enum Errnos {
    static let ENOTSUPP: Int32 = 524

    static let kcov: [FaultCall: [Int32]] = [
        .open: [ENOENT, EACCES, EPERM, ENODEV, ENXIO, EBUSY, EINTR, ENOMEM, EMFILE, ENFILE, EFAULT],
        .close: [EINTR, EIO, ENOSPC],
        .ioctl: [EINVAL, EBUSY, ENOMEM, ENOTTY, EPERM, EEXIST, ENOENT, ENXIO, ENODEV, EOPNOTSUPP, ENOTSUPP, EINTR, EAGAIN],
        .mmap: [EINVAL, EACCES, ENOMEM, EAGAIN, ENODEV, EPERM, EOVERFLOW, ENFILE, EBADF],
        .readFile: [ENOENT, EACCES, EIO, EINTR, ENOMEM, EMFILE, ENFILE],
        .spawnFork: [EAGAIN, ENOMEM, EMFILE, ENFILE, ENOSYS],
        .spawnRedirect: [EBADF, EMFILE, EINTR, EBUSY],
        .spawnEnable: [EINVAL, EBUSY, ENOMEM, ENOTSUPP, EOPNOTSUPP, ENXIO, EPERM, EINTR],
        .spawnExec: [ENOENT, EACCES, ENOEXEC, E2BIG, ENOMEM, ETXTBSY, ELOOP, ENAMETOOLONG, EISDIR, EPERM, EIO, ENOTDIR, EMFILE, ENFILE],
        .forkFork: [EAGAIN, ENOMEM, ENOSYS],
        .forkEnable: [EINVAL, EBUSY, ENOMEM, ENOTSUPP, EOPNOTSUPP, ENXIO, EPERM, EINTR],
    ]

    /// perf_event_open(2)'s ERRORS, the kprobe PMU's (EADDRNOTAVAIL, EILSEQ), and read(2)'s of a counter.
    static let kprobe: [FaultCall: [Int32]] = [
        .readFile: [ENOENT, EACCES, EIO, EINTR, ENOMEM, EMFILE, ENFILE],
        .perfEventOpen: [
            E2BIG, EACCES, EBADF, EBUSY, EFAULT, EINTR, EINVAL, EMFILE, ENODEV, ENOENT, ENOSPC, ENOSYS, EOPNOTSUPP, EOVERFLOW,
            EPERM, ESRCH, EADDRNOTAVAIL, EILSEQ, ENOMEM, ENFILE,
        ],
        .ioctl: [EINVAL, EBADF, EFAULT, ENOTTY, EINTR, ENOMEM],
        .readCounter: [EINTR, EAGAIN, EBADF, EFAULT, EINVAL, EIO, ENOSPC],
        .close: [EINTR, EIO, EBADF],
        .spawnPaused: [EAGAIN, ENOMEM, EMFILE, ENFILE],
        .release: [ENOENT, EACCES, ENOEXEC, E2BIG, ENOMEM, ETXTBSY, ELOOP, ENAMETOOLONG, EISDIR, EPERM, EIO],
    ]
}
