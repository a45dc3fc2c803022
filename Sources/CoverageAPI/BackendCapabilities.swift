/// What a backend can do, as data: clients and the conformance suite branch on these fields,
/// never on a backend's name.
public struct BackendCapabilities: Sendable, Hashable, Codable {
    /// What a recorded PC means.
    public enum PCKind: String, Sendable, Hashable, Codable {
        /// A kernel text address with KASLR removed: symbolize against vmlinux.
        case kernelAddress
        /// An identifier the kernel made up (gVisor's Go coverage blocks): symbolize with the kernel's own tool.
        case synthetic
    }

    /// How much code one entry stands for.
    public enum Granularity: String, Sendable, Hashable, Codable {
        case basicBlock
        case function
    }

    /// The kinds of remote (background-thread) coverage a backend can attach to.
    public enum RemoteKind: String, Sendable, Hashable, Codable {
        /// Linux common handles: kernel threads started on behalf of the enabling task.
        case commonHandle
        /// Linux USB bus handles.
        case usbBus
        /// NetBSD VHCI ports.
        case vhciPort
    }

    /// Modes ENABLE accepts on this backend (a kernel may still lack one it was not built with).
    public var supportedModes: Set<CoverageMode>
    public var pcKind: PCKind
    public var granularity: Granularity
    /// Only the enabling thread's kernel execution is recorded.
    public var perThread: Bool
    /// Entries come in execution order with repeats (so edges can be derived).
    public var orderedTrace: Bool
    /// Remote coverage kinds; empty when the backend has none.
    public var remote: Set<RemoteKind>
    /// The buffer must be mapped before ENABLE.
    public var requiresMapBeforeEnable: Bool
    /// DISABLE drops the buffer: a new mapping is needed before the next ENABLE.
    public var remapAfterDisable: Bool
    /// A mapping must be exactly the buffer's size; otherwise a shorter mapping (a window) is accepted.
    public var mapLengthMustMatch: Bool
    /// Remote coverage lands in a buffer the kernel owns, visible only in mappings made after
    /// attaching (NetBSD): collectors map again after a remote enable.
    public var remapAfterRemoteAttach: Bool
    /// A thread can have only one instance enabled at a time (a second ENABLE is `.busy`).
    public var oneEnabledInstancePerThread: Bool
    /// Closing the last descriptor of an enabled instance leaves collection running until the
    /// thread exits (and the thread busy); otherwise closing stops collection at once.
    public var collectsAfterClose: Bool
    /// The shared buffer's size rules; `nil` for a backend without one (function counters).
    public var buffer: BufferRules?
    /// Whole runs (`kcovctl trace --follow`, Docs/follow.md): the follow agent speaks this
    /// backend's device and ABI, so every task of a command can enable a buffer of its own.
    public var wholeRunAgent: Bool
    /// The Linux kernel configuration options the backend's device or events need, each with why
    /// (what `kcovctl --vm --kernel` checks a user's kernel for before booting it,
    /// Docs/guest-kernels.md); empty for a backend whose kernel is not configured with Kconfig
    /// (the BSDs) or that needs nothing of it (gVisor's kcov is the sandbox's own).
    public var kernelOptions: [KernelOption]

    /// What one entry of this backend's traces stands for.
    public var unit: CoverageUnit {
        CoverageUnit(pcKind: pcKind, granularity: granularity)
    }

    public init(
        supportedModes: Set<CoverageMode>, pcKind: PCKind, granularity: Granularity, perThread: Bool,
        orderedTrace: Bool, remote: Set<RemoteKind>, requiresMapBeforeEnable: Bool, remapAfterDisable: Bool,
        mapLengthMustMatch: Bool, oneEnabledInstancePerThread: Bool, collectsAfterClose: Bool,
        buffer: BufferRules?, remapAfterRemoteAttach: Bool = false, wholeRunAgent: Bool = false, kernelOptions: [KernelOption] = []
    ) {
        self.wholeRunAgent = wholeRunAgent
        self.kernelOptions = kernelOptions
        self.supportedModes = supportedModes
        self.pcKind = pcKind
        self.granularity = granularity
        self.perThread = perThread
        self.orderedTrace = orderedTrace
        self.remote = remote
        self.requiresMapBeforeEnable = requiresMapBeforeEnable
        self.remapAfterDisable = remapAfterDisable
        self.mapLengthMustMatch = mapLengthMustMatch
        self.remapAfterRemoteAttach = remapAfterRemoteAttach
        self.oneEnabledInstancePerThread = oneEnabledInstancePerThread
        self.collectsAfterClose = collectsAfterClose
        self.buffer = buffer
    }

    private enum CodingKeys: String, CodingKey {
        case supportedModes, pcKind, granularity, perThread, orderedTrace, remote, requiresMapBeforeEnable,
             remapAfterDisable, mapLengthMustMatch, remapAfterRemoteAttach, oneEnabledInstancePerThread, collectsAfterClose, buffer, wholeRunAgent, kernelOptions
    }

    /// Reads what ``encode(to:)`` writes; `wholeRunAgent` and `kernelOptions` are absent from
    /// older JSON (false, none).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            supportedModes: try container.decode(Set<CoverageMode>.self, forKey: .supportedModes), pcKind: try container.decode(PCKind.self, forKey: .pcKind),
            granularity: try container.decode(Granularity.self, forKey: .granularity), perThread: try container.decode(Bool.self, forKey: .perThread),
            orderedTrace: try container.decode(Bool.self, forKey: .orderedTrace), remote: try container.decode(Set<RemoteKind>.self, forKey: .remote),
            requiresMapBeforeEnable: try container.decode(Bool.self, forKey: .requiresMapBeforeEnable),
            remapAfterDisable: try container.decode(Bool.self, forKey: .remapAfterDisable),
            mapLengthMustMatch: try container.decode(Bool.self, forKey: .mapLengthMustMatch),
            oneEnabledInstancePerThread: try container.decode(Bool.self, forKey: .oneEnabledInstancePerThread),
            collectsAfterClose: try container.decode(Bool.self, forKey: .collectsAfterClose), buffer: try container.decodeIfPresent(BufferRules.self, forKey: .buffer),
            remapAfterRemoteAttach: try container.decode(Bool.self, forKey: .remapAfterRemoteAttach),
            wholeRunAgent: try container.decodeIfPresent(Bool.self, forKey: .wholeRunAgent) ?? false,
            kernelOptions: try container.decodeIfPresent([KernelOption].self, forKey: .kernelOptions) ?? [])
    }

    /// Encodes sets sorted, so the same capabilities always print the same JSON.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(supportedModes.sorted { $0.rawValue < $1.rawValue }, forKey: .supportedModes)
        try container.encode(pcKind, forKey: .pcKind)
        try container.encode(granularity, forKey: .granularity)
        try container.encode(perThread, forKey: .perThread)
        try container.encode(orderedTrace, forKey: .orderedTrace)
        try container.encode(remote.sorted { $0.rawValue < $1.rawValue }, forKey: .remote)
        try container.encode(requiresMapBeforeEnable, forKey: .requiresMapBeforeEnable)
        try container.encode(remapAfterDisable, forKey: .remapAfterDisable)
        try container.encode(mapLengthMustMatch, forKey: .mapLengthMustMatch)
        try container.encode(remapAfterRemoteAttach, forKey: .remapAfterRemoteAttach)
        try container.encode(oneEnabledInstancePerThread, forKey: .oneEnabledInstancePerThread)
        try container.encode(collectsAfterClose, forKey: .collectsAfterClose)
        try container.encode(buffer, forKey: .buffer)
        try container.encode(wholeRunAgent, forKey: .wholeRunAgent)
        try container.encode(kernelOptions, forKey: .kernelOptions)
    }
}

/// A Linux kernel configuration option a backend needs, and why.
public struct KernelOption: Sendable, Hashable, Codable {
    /// The option without its `CONFIG_` prefix, as Kconfig names it: `KCOV`.
    public var name: String
    /// What the backend does with it, one phrase.
    public var reason: String

    public init(_ name: String, _ reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// The size rules of a kcov-style shared buffer, in words of ``wordSize`` bytes, count word included.
public struct BufferRules: Sendable, Hashable, Codable {
    /// Sizes INIT accepts.
    public var words: ClosedRange<Int>
    /// A size must be a multiple of this many words to be mappable (whole pages).
    public var wordMultiple: Int
    /// Bytes per buffer word.
    public var wordSize: Int

    public init(words: ClosedRange<Int>, wordMultiple: Int, wordSize: Int) {
        self.words = words
        self.wordMultiple = wordMultiple
        self.wordSize = wordSize
    }

    /// Sizes that INIT accepts and that can be mapped: from the smallest multiple of
    /// ``wordMultiple`` in ``words`` to the largest; `nil` if there is none.
    public var mappableWords: ClosedRange<Int>? {
        guard wordMultiple > 0 else { return nil }
        let (up, overflow) = words.lowerBound.addingReportingOverflow(wordMultiple - 1)
        guard !overflow else { return nil }
        let lowest = up / wordMultiple * wordMultiple
        let highest = words.upperBound / wordMultiple * wordMultiple
        return lowest <= highest ? lowest...highest : nil
    }

    /// Checks a buffer size against ``words`` and ``wordMultiple``; the error names the sizes
    /// that work.
    public func validate(words count: Int) throws(CoverageError) {
        let usable = mappableWords.map { "use \($0.lowerBound)…\($0.upperBound) words, a multiple of \(wordMultiple) (\(wordMultiple * wordSize)-byte pages)" }
            ?? "this backend has no mappable size"
        guard words.contains(count), count % wordMultiple == 0 else {
            throw CoverageError(.bufferSize, "a buffer of \(count) words cannot be used: \(usable)")
        }
    }
}

/// Whether a backend's device can be used on this machine, and why not.
public struct Availability: Sendable, Hashable, Codable {
    public var available: Bool
    /// What was found (when available) or what is missing and what to do (when not).
    public var reason: String

    public init(available: Bool, reason: String) {
        self.available = available
        self.reason = reason
    }
}
