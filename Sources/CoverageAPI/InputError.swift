/// Why a file the user gave cannot be read or written: which file (or `standard input`), and what
/// was wrong with it, in a message that names the field, line or byte at fault where there is one.
/// Trace files (`TraceFileError`) and signal set files (`SignalSetError`) report with it.
public struct InputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file's path, `standard input`, or what was being written.
    public var source: String
    public var message: String

    public init(source: String, _ message: String) {
        self.source = source
        self.message = message
    }

    /// `source: message`.
    public var description: String { "\(source): \(message)" }
}
