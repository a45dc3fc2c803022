package import CoverageAPI

/// A BSD kcov(4) device node (`/dev/kcov`) and the kernel it is reached through: the host's own
/// kernel, which must then run the node's system, or any implementation of the seam (a reference
/// model). What the NetBSD, FreeBSD and OpenBSD backends share before their ioctls differ.
package struct KcovDeviceNode: Sendable {
    package let kernel: any KernelInterface
    /// Where the node is.
    package let path: String
    /// uname(3)'s name of the system whose kcov(4) this is ("NetBSD", "FreeBSD", "OpenBSD").
    let system: String
    /// The kernel to run on instead, said when the host runs another system ("a NetBSD kernel
    /// with options KCOV").
    let kernelNeeded: String
    /// Whether `kernel` is the host's own, so the host must run `system`.
    let onHostKernel: Bool

    /// The node on the host's own kernel.
    package static func host(path: String, system: String, kernelNeeded: String) -> KcovDeviceNode {
        KcovDeviceNode(kernel: SystemKernel(), path: path, system: system, kernelNeeded: kernelNeeded, onHostKernel: true)
    }

    /// The node on any implementation of the seam, such as a reference model; no host check.
    package init(kernel: any KernelInterface, path: String, system: String, kernelNeeded: String) {
        self.init(kernel: kernel, path: path, system: system, kernelNeeded: kernelNeeded, onHostKernel: false)
    }

    private init(kernel: any KernelInterface, path: String, system: String, kernelNeeded: String, onHostKernel: Bool) {
        self.kernel = kernel
        self.path = path
        self.system = system
        self.kernelNeeded = kernelNeeded
        self.onHostKernel = onHostKernel
    }

    /// Why the node cannot be used when it is on the host's kernel and the host runs another
    /// system; `nil` otherwise. Asked before the node is opened, so that no kernel receives
    /// another kernel's requests (``SystemKernel/hostSystemName()``).
    package var foreignHostReason: String? {
        guard onHostKernel, let host = SystemKernel.hostSystemName(), host != system else { return nil }
        return "\(path) is \(system)'s kcov(4) and this host runs \(host), not \(system): run on \(kernelNeeded) (or check the reference model with --model)"
    }

    /// Available when the node opens read-write; `explain` says why an open failed.
    package func availability(explain: (Int32) -> CoverageError) -> Availability {
        if let reason = foreignHostReason { return Availability(available: false, reason: reason) }
        return kernel.availability(of: path, reason: "\(path) opened read-write", explain: explain)
    }

    /// Opens the node read-write (`O_CLOEXEC`): a new kcov instance. Fails with `.deviceMissing`
    /// on a host of another system, or with what `explain` makes of open(2)'s errno.
    package func open(explain: (Int32) -> CoverageError) throws(CoverageError) -> Int32 {
        if let reason = foreignHostReason { throw CoverageError(.deviceMissing, reason) }
        return try kernel.openDevice(path, explain: explain)
    }
}
