import Foundation

/// A regular file opened for reading, every read checked against its size: a value read from a
/// header can never move a read outside the file.
final class InputFile {
    let path: String
    let descriptor: Int32
    /// Bytes, as `fstat` gave them when the file was opened.
    let size: Int

    /// Opens `path`; `what` says what the file should be ("a bzImage"), for the messages.
    init(path: String, what: String) throws(PreflightError) {
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let code = errno
            throw PreflightError(.unreadable, path: path, "cannot open it: \(String(cString: strerror(code))); give the path of \(what)")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            let kind = status.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file (a FIFO, a socket or a device)"
            close(descriptor)
            throw PreflightError(.unreadable, path: path, "is \(kind); give the path of \(what)")
        }
        self.path = path
        self.descriptor = descriptor
        self.size = Int(status.st_size)
    }

    deinit {
        close(descriptor)
    }

    /// `count` bytes from `offset`, or nil when they do not all lie inside the file.
    func read(at offset: Int, count: Int) throws(PreflightError) -> [UInt8]? {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                let reason = got == 0 ? "it became shorter while being read" : String(cString: strerror(errno))
                throw PreflightError(.unreadable, path: path, "cannot read \(count) bytes at offset \(offset): \(reason)")
            }
            done += got
        }
        return bytes
    }
}

extension Array where Element == UInt8 {
    /// The little-endian integer of `T`'s width at `offset`, or nil past the end.
    func littleEndian<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int) -> T? {
        let width = T.bitWidth / 8
        guard offset >= 0, offset <= count - width else { return nil }
        var value: T = 0
        for index in (0..<width).reversed() {
            value = value << 8 | T(self[offset + index])
        }
        return value
    }

    /// Whether the bytes at `offset` are `prefix`.
    func has(_ prefix: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, offset <= count - prefix.count else { return false }
        return self[offset..<offset + prefix.count].elementsEqual(prefix)
    }
}

extension UnsafeRawBufferPointer {
    /// The offset of the first `needle` in `range` (offsets into this buffer), or nil.
    func firstOffset(of needle: [UInt8], in range: Range<Int>) -> Int? {
        guard let base = baseAddress, !needle.isEmpty, range.lowerBound >= 0, range.upperBound <= count,
              range.count >= needle.count else { return nil }
        return needle.withUnsafeBytes { pattern -> Int? in
            var position = range.lowerBound
            let last = range.upperBound - needle.count
            while position <= last {
                guard let hit = memchr(base + position, Int32(needle[0]), last - position + 1) else { return nil }
                let offset = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + offset, pattern.baseAddress!, needle.count) == 0 { return offset }
                position = offset + 1
            }
            return nil
        }
    }
}
