import CoverageAPI
import Foundation

/// Writes a tree of files (the HTML report) to `--output DIR`, all or nothing: the files go into a
/// new directory beside DIR, which then takes DIR's place. DIR may be missing, empty, or a tree
/// an earlier run wrote (it holds ``marker``); anything else is refused rather than mixed with or
/// deleted. Errors name the path and the reason (strerror).
final class OutputDirectory {
    /// The file that marks a directory as written by kcovctl, so a later run may replace it.
    static let marker = ".kcovctl-report"

    let destination: String
    private let staging: String
    private var finished = false

    /// Checks DIR and creates the staging directory beside it.
    init(_ destination: String) throws(CoverageError) {
        var status = stat()
        if lstat(destination, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw CoverageError(.invalidArgument, "cannot write the HTML report to \(destination): it exists and is not a directory; name a new directory")
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: destination)) ?? []
            guard entries.isEmpty || entries.contains(Self.marker) else {
                throw CoverageError(
                    .invalidArgument,
                    "cannot write the HTML report to \(destination): it holds other files (\(entries.count)), not an earlier report; name a new or empty directory")
            }
        }
        let trimmed = destination.hasSuffix("/") && destination.count > 1 ? String(destination.dropLast()) : destination
        let parent = (trimmed as NSString).deletingLastPathComponent
        var template = Array(((parent.isEmpty ? "." : parent) + "/.kcovctl-html-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            let code = errno
            throw CoverageError(
                .system, "cannot write \(destination): cannot create a directory in \(parent.isEmpty ? "." : parent): \(String(cString: strerror(code)))",
                syscall: "mkdtemp", errno: code)
        }
        self.destination = trimmed
        staging = String(cString: template)
        chmod(staging, 0o755)
    }

    deinit {
        if !finished { Self.remove(staging) }
    }

    /// Writes `contents` at `relativePath` (with `/` separators) in the new tree.
    func write(_ relativePath: String, _ contents: String) throws(CoverageError) {
        let path = staging + "/" + relativePath
        var directory = (relativePath as NSString).deletingLastPathComponent
        var missing: [String] = []
        while !directory.isEmpty, access(staging + "/" + directory, F_OK) != 0 {
            missing.append(directory)
            directory = (directory as NSString).deletingLastPathComponent
        }
        for created in missing.reversed() where mkdir(staging + "/" + created, 0o755) != 0 {
            throw failure(destination + "/" + created, "mkdir", errno)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(destination + "/" + relativePath, "open", errno) }
        defer { close(fd) }
        if let code = OutputFile.writeAll(fd, Array(contents.utf8)) { throw failure(destination + "/" + relativePath, "write", code) }
    }

    /// Puts the new tree in DIR's place (an earlier report there is removed).
    func commit() throws(CoverageError) {
        try write(Self.marker, "written by kcovctl report; kcovctl replaces this directory on the next run\n")
        var status = stat()
        if lstat(destination, &status) == 0 {
            let old = staging + ".old"
            guard rename(destination, old) == 0 else { throw failure(destination, "rename", errno) }
            guard rename(staging, destination) == 0 else {
                let code = errno
                _ = rename(old, destination)
                throw failure(destination, "rename", code)
            }
            Self.remove(old)
        } else if rename(staging, destination) != 0 {
            throw failure(destination, "rename", errno)
        }
        finished = true
    }

    private static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    private func failure(_ path: String, _ call: String, _ code: Int32) -> CoverageError {
        CoverageError(.system, "cannot write \(path): \(String(cString: strerror(code)))", syscall: call, errno: code)
    }
}
