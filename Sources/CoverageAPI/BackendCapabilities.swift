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
    /// attaching (NetBSD): sessions map again after a remote enable.
    public var remapAfterRemoteAttach: Bool
    /// A thread can have only one instance enabled at a time (a second ENABLE is `.busy`).
    public var oneEnabledInstancePerThread: Bool
    /// Closing the last descriptor of an enabled instance leaves collection running until the
    /// thread exits (and the thread busy); otherwise closing stops collection at once.
    public var collectsAfterClose: Bool
    /// Buffer sizes INIT accepts, in words.
    public var bufferWords: ClosedRange<Int>
    /// A size must be a multiple of this many words to be mappable.
    public var bufferWordMultiple: Int
    /// Bytes per buffer word.
    public var wordSize: Int

    public init(
        supportedModes: Set<CoverageMode>, pcKind: PCKind, granularity: Granularity, perThread: Bool,
        orderedTrace: Bool, remote: Set<RemoteKind>, requiresMapBeforeEnable: Bool, remapAfterDisable: Bool,
        mapLengthMustMatch: Bool, oneEnabledInstancePerThread: Bool, collectsAfterClose: Bool,
        bufferWords: ClosedRange<Int>, bufferWordMultiple: Int, wordSize: Int, remapAfterRemoteAttach: Bool = false
    ) {
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
        self.bufferWords = bufferWords
        self.bufferWordMultiple = bufferWordMultiple
        self.wordSize = wordSize
    }

    private enum CodingKeys: String, CodingKey {
        case supportedModes, pcKind, granularity, perThread, orderedTrace, remote, requiresMapBeforeEnable,
             remapAfterDisable, mapLengthMustMatch, remapAfterRemoteAttach, oneEnabledInstancePerThread, collectsAfterClose, bufferWords,
             bufferWordMultiple, wordSize
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
        try container.encode(bufferWords, forKey: .bufferWords)
        try container.encode(bufferWordMultiple, forKey: .bufferWordMultiple)
        try container.encode(wordSize, forKey: .wordSize)
    }

    /// Checks a buffer size against ``bufferWords`` and ``bufferWordMultiple``.
    public func validate(bufferWords words: Int) throws(CoverageError) {
        guard bufferWords.contains(words) else {
            throw CoverageError(
                .bufferSize,
                "a buffer of \(words) words is out of range: use \(bufferWords.lowerBound)…\(bufferWords.upperBound) words")
        }
        guard words % bufferWordMultiple == 0 else {
            throw CoverageError(
                .bufferSize,
                "a buffer of \(words) words cannot be mapped: use a multiple of \(bufferWordMultiple) words (\(bufferWordMultiple * wordSize) bytes)")
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
