import CoverageAPI

/// Checks of the instance life cycle: sizing, mapping and enabling in and out of order.
enum LifecycleChecks {
    static let all: [ConformanceCheck] = [
        ConformanceCheck("lifecycle.instances-independent", "Each open is its own instance: tracing one leaves another's buffer untouched.") { context in
            let words = context.smallestMappableWords
            try context.withInstance(words: words) { first in
                try context.withInstance(words: words) { second in
                    second.buffer!.reset()
                    try context.enable(first)
                    context.backend.probe()
                    try context.disable(first)
                    try context.expect(first.buffer!.rawCount > 0, "the enabled instance recorded the probe")
                    try context.expect(second.buffer!.rawCount == 0, "the other instance's count changed to \(second.buffer!.rawCount)")
                }
            }
        },
        ConformanceCheck("lifecycle.init-size-range", "Sizes outside the backend's range are refused as bufferSize.") { context in
            let range = context.bufferRules.words
            for words in [range.lowerBound - 1, range.upperBound + 1] {
                try context.withInstance { instance in
                    try context.expectError(.bufferSize, "initialize(\(words) words)") { () throws(CoverageError) in
                        try context.backend.initialize(instance.fd, words: words)
                    }
                }
            }
        },
        ConformanceCheck("lifecycle.init-twice", "A second initialization of one instance is refused as busy.") { context in
            try context.withInstance(words: context.smallestMappableWords, map: false) { instance in
                try context.expectError(.busy, "second initialize") { () throws(CoverageError) in
                    try context.backend.initialize(instance.fd, words: context.smallestMappableWords)
                }
            }
        },
        ConformanceCheck("lifecycle.init-after-disable", "An instance that was enabled and disabled cannot be sized again (busy).") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                try context.disable(instance)
                try context.expectError(.busy, "initialize after disable") { () throws(CoverageError) in
                    try context.backend.initialize(instance.fd, words: context.smallestMappableWords)
                }
            }
        },
        ConformanceCheck("lifecycle.enable-before-init", "Enabling an instance that has no buffer is refused as invalidState.") { context in
            try context.withInstance { instance in
                try context.expectError(.invalidState, "enable before initialize") { () throws(CoverageError) in
                    try context.backend.enable(instance.fd, mode: .pc)
                }
            }
        },
        ConformanceCheck("lifecycle.map-before-init", "Mapping an instance that has no buffer is refused as invalidState.") { context in
            try context.withInstance { instance in
                try context.expectError(.invalidState, "map before initialize") { () throws(CoverageError) in
                    let address = try context.backend.mapBuffer(instance.fd, words: context.smallestMappableWords)
                    context.backend.unmapBuffer(address, words: context.smallestMappableWords)
                }
            }
        },
        ConformanceCheck("lifecycle.enable-twice", "Enabling an enabled instance again on the same thread is refused as invalidState.") { context in
            try context.withInstance(words: context.smallestMappableWords) { instance in
                try context.enable(instance)
                defer { try? context.backend.disable(instance.fd) }
                try context.expectError(.invalidState, "second enable") { () throws(CoverageError) in
                    try context.backend.enable(instance.fd, mode: .pc)
                }
            }
        },
        ConformanceCheck("lifecycle.enable-without-map", "Enabling before mapping works, or is refused as invalidState where the capabilities require a mapping first.") { context in
            try context.withInstance(words: context.smallestMappableWords, map: false) { instance in
                if context.capabilities.requiresMapBeforeEnable {
                    try context.expectError(.invalidState, "enable without a mapping") { () throws(CoverageError) in
                        try context.backend.enable(instance.fd, mode: .pc)
                    }
                } else {
                    try context.must("enable without a mapping") { () throws(CoverageError) in try context.backend.enable(instance.fd, mode: .pc) }
                    try context.disable(instance)
                }
            }
        },
        ConformanceCheck("mmap.wrong-size", "A mapping shorter than the buffer is refused as invalidState where lengths must match, and accepted as a window otherwise.") { context in
            let window = context.smallestMappableWords
            try context.withInstance(words: 2 * window, map: false) { instance in
                if context.capabilities.mapLengthMustMatch {
                    try context.expectError(.invalidState, "map \(window) words of a \(2 * window)-word buffer") { () throws(CoverageError) in
                        let address = try context.backend.mapBuffer(instance.fd, words: window)
                        context.backend.unmapBuffer(address, words: window)
                    }
                } else {
                    let address = try context.must("map \(window) words of a \(2 * window)-word buffer") { () throws(CoverageError) in
                        try context.backend.mapBuffer(instance.fd, words: window)
                    }
                    context.backend.unmapBuffer(address, words: window)
                }
            }
        },
        ConformanceCheck("ioctl.unknown", "A request the kernel does not define is refused as unsupportedOperation.") { context in
            try context.withInstance(words: context.smallestMappableWords, map: false) { instance in
                try context.expectError(.unsupportedOperation, "an undefined request") { () throws(CoverageError) in
                    try context.backend.sendUndefinedRequest(instance.fd)
                }
            }
        },
    ]
}
