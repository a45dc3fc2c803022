import Foundation
@testable import KernelPreflight
import Testing

/// bzImages built field by field: every compression the x86 kernel uses is read, and each way a
/// file can fail to be a bootable bzImage is refused with its own message, never a trap.
@Suite struct SyntheticImageTests {
    @Test("A payload in each of the kernel's compressions is decompressed and its embedded config checked", arguments: PayloadCompression.allCases)
    func everyCompression(format: PayloadCompression) throws {
        let scratch = try Scratch()
        let payload = try kernelLikePayload(scratch, configuration: configText(allBuiltIn(.kcov)))
        let path = try scratch.file("bzImage", SyntheticImage(payload: try scratch.compress(payload, format)).bytes)
        let report = try Preflight.check(kernel: path, requirements: .kcov)
        #expect(report.image.compression == format)
        #expect(report.configurationSource == "the configuration embedded in \(path)")
        #expect(try report.image.decompressedPayload() == payload)
        #expect(report.image.kernelVersion == SyntheticImage(payload: []).kernelVersion)
        #expect(report.image.protocolText == "2.15")
    }

    @Test("The embedded config's gaps are named: not set, a module, another value")
    func embeddedConfigLacksOptions() throws {
        let scratch = try Scratch()
        var options = allBuiltIn(.kcov)
        options["KCOV"] = "n"
        options["9P_FS"] = "m"
        options["NET_9P_VIRTIO"] = nil
        options["SERIAL_8250"] = "\"yes\""
        let payload = try kernelLikePayload(scratch, configuration: configText(options))
        let path = try scratch.file("bzImage", SyntheticImage(payload: try scratch.compress(payload, .xz)).bytes)
        let error = try #require(preflightError { _ = try Preflight.check(kernel: path, requirements: .kcov) })
        #expect(error.code == .missingOptions)
        #expect(error.missing.map(\.requirement.option) == ["NET_9P_VIRTIO", "9P_FS", "SERIAL_8250", "KCOV"], "in the requirements' order")
        #expect(error.message.contains("CONFIG_9P_FS=m is a module, which the guest cannot load: it boots without an initramfs"))
        #expect(error.message.contains("CONFIG_KCOV is not set (the coverage device itself)"))
        #expect(error.message.contains("CONFIG_NET_9P_VIRTIO is not set"))
        #expect(error.message.contains("CONFIG_SERIAL_8250=\"yes\", not y"))
        #expect(error.message.contains("cannot trace with the linux backend in the guest: it lacks 4 options"))
        // The same kernel runs a plain command once its root file system is there: kcov is only for kcov.
        options["KCOV"] = "n"
        options["9P_FS"] = "y"
        options["NET_9P_VIRTIO"] = "y"
        options["SERIAL_8250"] = "y"
        let runnable = try scratch.file("runnable", SyntheticImage(payload: try scratch.compress(try kernelLikePayload(scratch, configuration: configText(options)), .gzip)).bytes)
        _ = try Preflight.check(kernel: runnable, requirements: .command)
        let error2 = try #require(preflightError { _ = try Preflight.check(kernel: runnable, requirements: .kcov) })
        #expect(error2.missing.map(\.requirement.option) == ["KCOV"])
        let error3 = try #require(preflightError { _ = try Preflight.check(kernel: runnable, requirements: .kprobe) })
        #expect(error3.missing.map(\.requirement.option) == ["KALLSYMS", "PERF_EVENTS", "KPROBES", "KPROBE_EVENTS"])
    }

    @Test("No embedded config: refused naming the remedies; a given .config is read instead")
    func noEmbeddedConfig() throws {
        let scratch = try Scratch()
        let path = try scratch.file("bzImage", SyntheticImage(payload: try scratch.compress(try kernelLikePayload(scratch, configuration: nil), .zstd)).bytes)
        let error = try #require(preflightError { _ = try Preflight.check(kernel: path, requirements: .command) })
        #expect(error.code == .noConfiguration)
        #expect(error.message.contains("embeds no configuration (it was built without CONFIG_IKCONFIG=y)"))
        #expect(error.message.contains("give the .config it was built with"))
        let config = try scratch.file("config", Array(configText(allBuiltIn(.command)).utf8))
        let report = try Preflight.check(kernel: path, configuration: config, requirements: .command)
        #expect(report.configurationSource == config)
        // With an embedded configuration, a given one is not read, and the note says so.
        let embedding = try scratch.file("embedding", SyntheticImage(payload: try scratch.compress(try kernelLikePayload(scratch, configuration: configText(allBuiltIn(.command))), .gzip)).bytes)
        var notes: [String] = []
        let embedded = try Preflight.check(kernel: embedding, configuration: config, requirements: .command) { notes.append($0) }
        #expect(embedded.configurationSource == "the configuration embedded in \(embedding)")
        #expect(notes == ["\(config) was not read: the kernel embeds its own configuration"])
        let notConfig = try scratch.file("notes.txt", Array("just some notes\nnothing = here\n".utf8))
        let refused = try #require(preflightError { _ = try Preflight.check(kernel: path, configuration: notConfig, requirements: .command) })
        #expect(refused.code == .notConfiguration && refused.path == notConfig && refused.message.contains("not a kernel .config"))
    }

    @Test("A file without the x86 boot header, or an ELF file, is not a bzImage")
    func notABootImage() throws {
        let scratch = try Scratch()
        let text = try scratch.file("notes.txt", [UInt8](repeating: 0x41, count: 4096))
        let error = try #require(preflightError { _ = try BootImage(path: text) })
        #expect(error.code == .notBootImage && error.message.contains("no \"HdrS\" at offset 0x202"), "\(error)")
        let elf = try #require(preflightError { _ = try BootImage(path: "/bin/true") })
        #expect(elf.code == .notBootImage && elf.message.contains("is an ELF file (a vmlinux?), not a bzImage"), "\(elf)")
        let empty = try #require(preflightError { _ = try BootImage(path: try scratch.file("empty", [])) })
        #expect(empty.code == .truncatedHeader && empty.message.contains("is 0 bytes: too short for a bzImage"), "\(empty)")
        let folder = try #require(preflightError { _ = try BootImage(path: scratch.folder) })
        #expect(folder.code == .unreadable && folder.message.contains("is a directory"), "\(folder)")
        let missing = try #require(preflightError { _ = try BootImage(path: scratch.folder + "/nothing") })
        #expect(missing.code == .unreadable && missing.message.contains("No such file"), "\(missing)")
        let fifo = scratch.folder + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let pipe = try #require(preflightError { _ = try BootImage(path: fifo) })
        #expect(pipe.code == .unreadable && pipe.message.contains("not a regular file"), "\(pipe): opened without waiting for a writer")
    }

    @Test("A header cut short, or a protocol before 2.08, is refused")
    func truncatedHeader() throws {
        let scratch = try Scratch()
        let whole = SyntheticImage(payload: try scratch.compress(Array("x".utf8), .gzip)).bytes
        for length in [0x206, 0x208, 0x24e] {
            let error = try #require(preflightError { _ = try BootImage(path: try scratch.file("cut-\(length)", Array(whole.prefix(length)))) })
            #expect(error.code == .truncatedHeader && error.message.contains("cut short"), "\(length): \(error)")
        }
        let short = try #require(preflightError { _ = try BootImage(path: try scratch.file("short", Array(whole.prefix(0x100)))) })
        #expect(short.code == .truncatedHeader && short.message.contains("256 bytes: too short"), "\(short)")
        var old = SyntheticImage(payload: [])
        old.protocolVersion = 0x0206
        let ancient = try #require(preflightError { _ = try BootImage(path: try scratch.file("old", old.bytes)) })
        #expect(ancient.code == .truncatedHeader && ancient.message.contains("boot protocol 2.6, older than 2.08"), "\(ancient)")
    }

    @Test("A payload outside the file is refused, whatever the header's values")
    func payloadOutOfBounds() throws {
        let scratch = try Scratch()
        let payload = try scratch.compress(Array("kernel".utf8), .gzip)
        var huge = SyntheticImage(payload: payload)
        huge.payloadLength = .max
        var far = SyntheticImage(payload: payload)
        far.setupSectors = 255
        far.payloadOffset = 0
        var farBytes = far.bytes
        farBytes.removeLast(farBytes.count - 0x400)  // the setup area alone is 128 KiB; keep 1 KiB
        var tiny = SyntheticImage(payload: Array(payload.prefix(3)))
        tiny.payloadLength = 3
        for (name, bytes) in [("huge", huge.bytes), ("far", farBytes), ("tiny", tiny.bytes)] {
            let error = try #require(preflightError { _ = try BootImage(path: try scratch.file(name, bytes)) })
            #expect(error.code == .payloadOutOfBounds, "\(name): \(error)")
        }
        let hugeError = try #require(preflightError { _ = try BootImage(path: try scratch.file("huge2", huge.bytes)) })
        #expect(hugeError.message.contains("payload_length 4294967295"), "\(hugeError)")
    }

    @Test("An unknown compression, a corrupt stream, a wrong size and a payload that is not ELF are each refused")
    func badPayloads() throws {
        let scratch = try Scratch()
        let unknown = try #require(preflightError { _ = try BootImage(path: try scratch.file("unknown", SyntheticImage(payload: Array("plain text, not compressed".utf8)).bytes)) })
        #expect(unknown.code == .unknownCompression && unknown.message.contains("starts with 70 6c 61 69 6e 20"), "\(unknown)")
        #expect(unknown.message.contains("gzip, bzip2, lzma, xz, lzo, lz4, zstd"))

        let content = try kernelLikePayload(scratch, configuration: configText(allBuiltIn(.command)))
        var corrupt = try scratch.compress(content, .xz)
        corrupt.replaceSubrange(100..<140, with: [UInt8](repeating: 0, count: 40))
        let image = try BootImage(path: try scratch.file("corrupt", SyntheticImage(payload: corrupt).bytes))
        let error = try #require(preflightError { _ = try image.decompressedPayload() })
        #expect(error.code == .corruptPayload && error.message.contains("does not decompress as xz (`xz -dc` failed: ") && error.message.contains("Compressed data is corrupt"), "\(error)")

        var cut = try scratch.compress(content, .zstd)
        cut.removeSubrange(cut.count / 2..<cut.count - 4)
        let cutImage = try BootImage(path: try scratch.file("cut", SyntheticImage(payload: cut).bytes))
        #expect(preflightError { _ = try cutImage.decompressedPayload() }?.code == .corruptPayload)

        var wrongSize = try scratch.compress(content, .lz4)
        wrongSize.replaceSubrange(wrongSize.count - 4..<wrongSize.count, with: littleEndian(UInt32(content.count - 1)))
        let sized = try BootImage(path: try scratch.file("sized", SyntheticImage(payload: wrongSize).bytes))
        let sizeError = try #require(preflightError { _ = try sized.decompressedPayload() })
        #expect(sizeError.code == .corruptPayload && sizeError.message.contains("decompresses to more than \(content.count - 1) bytes"), "\(sizeError)")
        var zeroSize = wrongSize
        zeroSize.replaceSubrange(zeroSize.count - 4..<zeroSize.count, with: [0, 0, 0, 0])
        let zero = try BootImage(path: try scratch.file("zero", SyntheticImage(payload: zeroSize).bytes))
        #expect(preflightError { _ = try zero.decompressedPayload() }?.message.contains("decompresses to 0 bytes, not a kernel's size") == true)

        let text = try scratch.compress(Array("not an ELF kernel".utf8), .bzip2)
        let textImage = try scratch.file("text", SyntheticImage(payload: text).bytes)
        let notELF = try #require(preflightError { _ = try Preflight.check(kernel: textImage, requirements: .command) })
        #expect(notELF.code == .notKernelPayload && notELF.message.contains("decompressed (bzip2) but is not an ELF file"), "\(notELF)")

        var unended = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/bin/true")))
        unended += Array("IKCFG_ST".utf8) + (try scratch.compress(Array("CONFIG_KCOV=y\n".utf8), .gzip))
        let unendedImage = try scratch.file("unended", SyntheticImage(payload: try scratch.compress(unended, .gzip)).bytes)
        let noEnd = try #require(preflightError { _ = try Preflight.check(kernel: unendedImage, requirements: .command) })
        #expect(noEnd.code == .corruptPayload && noEnd.message.contains("never ends (no IKCFG_ED)"), "\(noEnd)")
    }

    @Test("Any header bytes are refused or read, never a trap: 1,000 mutations of a valid image")
    func mutatedHeadersNeverTrap() throws {
        let scratch = try Scratch()
        let valid = SyntheticImage(payload: try scratch.compress(try kernelLikePayload(scratch, configuration: configText(allBuiltIn(.command))), .gzip)).bytes
        var generator = SplitMix64(seed: 0x5eed)
        var outcomes: [PreflightError.Code?: Int] = [:]
        let path = scratch.folder + "/mutant"
        for _ in 0..<1000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                // The header's fields, the version string and the payload's first bytes.
                let offset = [Int.random(in: 0x1f0..<0x250, using: &generator), Int.random(in: 0x300..<0x320, using: &generator)].randomElement(using: &generator)!
                bytes[offset] = UInt8.random(in: 0...255, using: &generator)
            }
            if Bool.random(using: &generator) { bytes.removeLast(Int.random(in: 0..<bytes.count, using: &generator)) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let image = try BootImage(path: path)
                outcomes[nil, default: 0] += 1
                #expect(image.payload.upperBound <= bytes.count)
            } catch {
                outcomes[error.code, default: 0] += 1
                #expect(!error.message.isEmpty)
            }
        }
        #expect(outcomes.count >= 4, "the mutations reach several outcomes: \(outcomes)")
    }
}

/// A seeded generator, so a failing mutation can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
