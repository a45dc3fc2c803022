public import CoverageAPI
public import CoverageSignal
public import TraceFile

/// A file `report`, `diff`, `merge` and `signal` take: a set file (`KCOVSET1`, from
/// `kcovctl signal --output` or `kcovctl merge`) or a trace file (any kind `TraceFile` reads).
public enum CoverageFile {
    case set(SignalSetFile)
    case trace(TraceFile)

    /// Reads `path` (`-`: standard input) once, whole, and tells the kind by its first bytes, so a
    /// pipe or FIFO works like a regular file. Errors name the file (`standard input` for `-`).
    public static func read(path: String) throws(InputError) -> CoverageFile {
        let source = path == "-" ? "standard input" : path
        let bytes = try TraceFile.readBytes(path: path, kind: "coverage file")
        if SignalSetFile.isSetFile(bytes) { return .set(try SignalSetFile.decode(bytes, source: source)) }
        return .trace(try TraceFile.decode(bytes: bytes, source: source))
    }
}
