public import Foundation

extension TraceFile {
    /// The file as JSON (version ``writtenVersion``), written byte by byte (a whole-program trace holds millions of PCs;
    /// `JSONEncoder` is several times slower). `format` and `version` come first, then the header,
    /// then the tasks, one PC, comparison or function a line. `JSONDecoder` (and ``decode(_:source:)``)
    /// read it back to an equal value; comparisons also carry `size` and `const` for readers that
    /// want them without decoding `type`.
    ///
    /// Throws for a value that breaks the rules of ``TraceFile`` (an entry in the wrong list, a
    /// `pcFormat` on a non-synthetic unit, …), naming the field: `tasks[0].pcs: …`.
    public func jsonData() throws(TraceFileError) -> Data {
        if let (path, message) = validationProblem { throw TraceFileError(source: "trace to write", "\(pathText(path)): \(message)") }
        var writer = JSONWriter()
        writer.reserve(tasks.reduce(512) { $0 + $1.pcs.count * 25 + $1.comparisons.count * 140 + $1.functions.count * 80 })
        writer.append("{\n  \"format\": ")
        writer.string(Self.formatName)
        writer.append(",\n  \"version\": \(writtenVersion),\n  \"backend\": ")
        writer.string(backend)
        writer.append(",\n  \"unit\": \"\(unit.rawValue)\",\n  \"mode\": \"\(mode.rawValue)\"")
        if let pcFormat { writer.append(",\n  \"pcFormat\": \"\(pcFormat.rawValue)\"") }
        if let command {
            writer.append(",\n  \"command\": [")
            for (index, argument) in command.enumerated() {
                if index > 0 { writer.append(", ") }
                writer.string(argument)
            }
            writer.append("]")
        }
        if let exit {
            writer.append(",\n  \"exit\": ")
            writer.exit(exit)
        }
        if let bufferWords { writer.append(",\n  \"bufferWords\": \(bufferWords)") }
        if unit == .function {
            if let probedFunctions {
                writer.list(",\n  \"probedFunctions\": [", probedFunctions, indent: "    ", closing: "  ") { writer, function in
                    writer.append("{\"name\": ")
                    writer.string(function.name)
                    writer.append(", \"pc\": ")
                    writer.hex(function.pc)
                    writer.append("}")
                }
            }
            writer.list(",\n  \"skippedFunctions\": [", skippedFunctions, indent: "    ", closing: "  ") { writer, function in
                writer.append("{\"name\": ")
                writer.string(function.name)
                writer.append(", \"reason\": ")
                writer.string(function.reason)
                writer.append("}")
            }
        }
        if !untraced.isEmpty {
            writer.list(",\n  \"untraced\": [", untraced, indent: "    ", closing: "  ") { writer, task in
                writer.append("{")
                if let pid = task.pid { writer.append("\"pid\": \(pid), ") }
                if let tid = task.tid { writer.append("\"tid\": \(tid), ") }
                if let executable = task.executable {
                    writer.append("\"executable\": ")
                    writer.string(executable)
                    writer.append(", ")
                }
                writer.append("\"reason\": ")
                writer.string(task.reason)
                writer.append("}")
            }
        }
        if let kernel {
            do {
                writer.append(",\n  \"kernel\": " + (try KernelLayoutCoding.json(kernel)))
            } catch {
                throw TraceFileError(source: "trace to write", "kernel: \(error)")
            }
        }
        writer.append(",\n  \"tasks\": [")
        for (index, task) in tasks.enumerated() {
            writer.append(index == 0 ? "\n    {" : ",\n    {")
            if let pid = task.pid { writer.append("\"pid\": \(pid), ") }
            if let tid = task.tid { writer.append("\"tid\": \(tid), ") }
            if let parentPid = task.parentPid { writer.append("\"parentPid\": \(parentPid), ") }
            if let executable = task.executable {
                writer.append("\"executable\": ")
                writer.string(executable)
                writer.append(", ")
            }
            if let order = task.order { writer.append("\"order\": \(order), ") }
            if let exit = task.exit {
                writer.append("\"exit\": ")
                writer.exit(exit)
                writer.append(", ")
            }
            writer.append(task.truncated ? "\"truncated\": true" : "\"truncated\": false")
            if let end = task.end { writer.append(", \"end\": \"\(end.rawValue)\"") }
            if let endOrder = task.endOrder { writer.append(", \"endOrder\": \(endOrder)") }
            if let withoutAgent = task.withoutAgent {
                writer.append(", \"withoutAgent\": ")
                writer.string(withoutAgent)
            }
            if let agentTail = task.agentTail { writer.append(", \"agentTail\": \(agentTail)") }
            switch Self.listKey(unit: unit, mode: mode) {
            case .pcs: writer.pcList(task.pcs)
            case .comparisons:
                writer.list(", \"comparisons\": [", task.comparisons, indent: "      ", closing: "    ") { writer, record in
                    writer.append("{\"pc\": ")
                    writer.hex(record.pc)
                    writer.append(", \"type\": \(record.type), \"size\": \(record.operandSize), \"const\": \(record.isConstant), \"arg1\": ")
                    writer.hex(record.first)
                    writer.append(", \"arg2\": ")
                    writer.hex(record.second)
                    writer.append("}")
                }
            default:
                writer.list(", \"functions\": [", task.functions, indent: "      ", closing: "    ") { writer, function in
                    writer.append("{\"name\": ")
                    writer.string(function.name)
                    writer.append(", \"pc\": ")
                    writer.hex(function.pc)
                    writer.append(", \"hits\": \(function.hits)}")
                }
            }
            writer.append("}")
        }
        writer.append(tasks.isEmpty ? "]\n}\n" : "\n  ]\n}\n")
        return Data(writer.bytes)
    }
}

/// JSON text appended byte by byte.
struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func reserve(_ count: Int) { bytes.reserveCapacity(count) }

    mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// `"0x%016x"`.
    @inline(__always) mutating func hex(_ value: UInt64) {
        bytes.append(UInt8(ascii: "\""))
        appendHex(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A JSON string literal: `"` and `\` escaped, control characters as `\n`, `\t`, `\r` or `\u00XX`.
    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0a: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0d: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0xf)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func exit(_ exit: TraceFile.Exit) {
        switch exit {
        case .status(let status): append("{\"status\": \(status)}")
        case .signal(let signal): append("{\"signal\": \(signal)}")
        case .timedOut: append("{\"timedOut\": true}")
        }
    }

    /// `opening`, then each element on its own line after `indent`, then `]` on a line after `closing`.
    mutating func list<Element>(
        _ opening: String, _ elements: [Element], indent: String, closing: String, _ element: (inout JSONWriter, Element) -> Void
    ) {
        append(opening)
        let first = Array("\n\(indent)".utf8)
        let next = Array(",\n\(indent)".utf8)
        for (index, value) in elements.enumerated() {
            bytes.append(contentsOf: index == 0 ? first : next)
            element(&self, value)
        }
        append(elements.isEmpty ? "]" : "\n\(closing)]")
    }

    /// `, "pcs": [` and one quoted hex PC a line: the hot loop of a big trace, written through a
    /// pointer (fast in debug builds too).
    mutating func pcList(_ pcs: [UInt64]) {
        append(", \"pcs\": [")
        // Every line is `,\n      "0x%016x"` (28 bytes); the first without its comma.
        let line = 28
        let count = pcs.count
        let lines = [UInt8](unsafeUninitializedCapacity: pcs.count * line) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            hexDigits.withUnsafeBufferPointer { digits in
                guard let digits = digits.baseAddress else { return }
                pcs.withUnsafeBufferPointer { pcs in
                    guard let pcs = pcs.baseAddress else { return }
                    var out = base
                    for index in 0..<count {
                        let pc = pcs[index]
                        out[0] = UInt8(ascii: ",")
                        out[1] = 0x0a
                        for column in 2..<8 { out[column] = 0x20 }
                        out[8] = UInt8(ascii: "\"")
                        out[9] = UInt8(ascii: "0")
                        out[10] = UInt8(ascii: "x")
                        for digit in 0..<16 { out[11 + digit] = digits[Int(truncatingIfNeeded: (pc >> UInt64(60 - 4 * digit)) & 0xf)] }
                        out[27] = UInt8(ascii: "\"")
                        out += line
                    }
                    initialized = count * line
                }
            }
        }
        bytes.append(contentsOf: lines.dropFirst())
        append(pcs.isEmpty ? "]" : "\n    ]")
    }
}
