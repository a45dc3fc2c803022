import CoverageAPI

/// Checks of modes (PC, comparisons) and remote coverage against the capabilities.
enum ModeAndRemoteChecks {
    static let all: [ConformanceCheck] = [
        ConformanceCheck(
            "mode.unsupported", "A mode the capabilities do not list is refused as unsupportedMode.",
            notApplicable: { capabilities in
                capabilities.supportedModes.count == CoverageMode.allCases.count ? "supportedModes lists every mode" : nil
            }
        ) { context in
            for mode in CoverageMode.allCases where !context.capabilities.supportedModes.contains(mode) {
                try context.withInstance(words: context.smallestMappableWords) { instance in
                    try context.expectError(.unsupportedMode, "enable(\(mode.rawValue))") { () throws(CoverageError) in
                        try context.backend.enable(instance.fd, mode: mode)
                    }
                }
            }
        },
        ConformanceCheck(
            "cmp.decoding", "Comparison mode yields well-formed records: operand size 1, 2, 4 or 8, and the PC kind's addresses.",
            notApplicable: { $0.supportedModes.contains(.comparisons) ? nil : "supportedModes lacks cmp" }
        ) { context in
            try context.withInstance(words: 64 * context.smallestMappableWords) { instance in
                do {
                    try context.backend.enable(instance.fd, mode: .comparisons)
                } catch let error as CoverageError where error.code == .unsupportedMode {
                    throw ConformanceNotApplicable("this kernel was built without comparison mode: \(error.message)")
                } catch {
                    throw ConformanceFailure("enable(cmp) failed: \(error)")
                }
                instance.buffer!.reset()
                context.backend.probe()
                let trace = instance.buffer!.read(mode: .comparisons, pcKind: context.capabilities.pcKind)
                try context.disable(instance)
                try context.expect(!trace.comparisons.isEmpty, "no comparison was recorded")
                let malformed = trace.comparisons.filter { !$0.isWellFormed }
                try context.expect(malformed.isEmpty, "\(malformed.count) records have undefined type bits")
                if context.capabilities.pcKind == .kernelAddress {
                    try context.expect(trace.comparisons.allSatisfy { $0.pc >= CollectionChecks.kernelHalf }, "a comparison PC is not a kernel address")
                }
            }
        },
        ConformanceCheck(
            "remote.common-handle", "Remote coverage on a common handle: the enabling thread's own syscalls are not recorded, and the handle is exclusive.",
            notApplicable: { $0.remote.contains(.commonHandle) ? nil : "remote lacks commonHandle" }
        ) { context in
            let request = RemoteRequest(targets: [.common(instance: UInt32.random(in: 1...0x7fff_ffff))], sectionWords: context.smallestMappableWords)
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.must("remote enable") { () throws(CoverageError) in try context.backend.enableRemote(instance.fd, mode: .pc, request) }
                defer { try? context.backend.disable(instance.fd) }
                instance.buffer!.reset()
                for _ in 0..<5 { context.backend.probe() }
                try context.expect(instance.buffer!.rawCount == 0, "the remote-enabled thread's own syscalls were recorded")
                try context.onAnotherThread {
                    try context.withInstance(words: context.smallestMappableWords) { other in
                        try context.expectError(.handleInUse, "the same handle from another instance") { () throws(CoverageError) in
                            try context.backend.enableRemote(other.fd, mode: .pc, request)
                        }
                    }
                }
            }
        },
        ConformanceCheck(
            "remote.unsupported-target", "A remote target kind the capabilities do not list is refused as unsupportedOperation before any syscall.",
            notApplicable: { $0.remote.count == 3 ? "remote lists every kind" : nil }
        ) { context in
            let targets: [RemoteRequest.Target] = [.common(instance: 1), .usbBus(1), .vhciPort(bus: 0, port: 1)]
            for target in targets where !context.capabilities.remote.contains(target.kind) {
                try context.withInstance(words: context.smallestMappableWords) { instance in
                    try context.expectError(.unsupportedOperation, "remote enable of \(target.kind.rawValue)", beforeAnySyscall: true) { () throws(CoverageError) in
                        try context.backend.enableRemote(instance.fd, mode: .pc, RemoteRequest(targets: [target], sectionWords: 512))
                    }
                }
            }
        },
    ]
}
