/// The kcov callbacks the compiler calls, by the mode whose entries they write.
public enum CoverageCallbacks {
    /// `-fsanitize-coverage=trace-pc`: one call per basic block; kcov's PC mode records its return address.
    public static let pc = ["__sanitizer_cov_trace_pc"]
    /// `-fsanitize-coverage=trace-cmp`: comparisons and switches, recorded in kcov's CMP mode.
    public static let comparisons = [
        "__sanitizer_cov_trace_cmp1", "__sanitizer_cov_trace_cmp2", "__sanitizer_cov_trace_cmp4", "__sanitizer_cov_trace_cmp8",
        "__sanitizer_cov_trace_const_cmp1", "__sanitizer_cov_trace_const_cmp2", "__sanitizer_cov_trace_const_cmp4",
        "__sanitizer_cov_trace_const_cmp8", "__sanitizer_cov_trace_switch",
    ]
}

/// Every PC kcov can record in one image, KASLR-free: the denominator of a coverage report.
///
/// kcov records the callback's return address (`_RET_IP_`). For a `call` to the callback that is
/// the address after the call. But gcc also ends functions with a *tail call* (`jmp`) to the
/// callback; the return address is then the one after the `call` that entered that function (or
/// a function that tail-jumped into it), in its caller. Both kinds are found by scanning `call
/// rel32` (0xe8), `jmp rel32` (0xe9), `jcc rel32` (0x0f 0x8x) and function-ending `jmp rel8`
/// (0xeb) without a disassembler: the target must be exactly a callback or a function's first byte. What cannot be
/// enumerated are returns after *indirect* calls into such functions;
/// ``KernelImage/followsIndirectCall(_:)`` recognizes those one PC at a time.
public struct CoverablePCs: Sendable {
    /// The PCs one mode's callbacks can be recorded at, each list sorted.
    public struct Sites: Sendable {
        /// After a `call` to a callback: one per instrumented basic block (or comparison).
        public var callSites: [UInt64]
        /// After a `call` to a function that can end in a tail call to a callback.
        public var tailCallReturns: [UInt64]
        /// Both, sorted and without repeats.
        public var all: [UInt64]

        init(callSites: [UInt64], tailCallReturns: [UInt64]) {
            // The scan finds them in address order already: sorting is then only a check.
            self.callSites = Self.isSorted(callSites) ? callSites : callSites.sorted()
            self.tailCallReturns = Self.isSorted(tailCallReturns) ? tailCallReturns : tailCallReturns.sorted()
            all = Self.mergedWithoutRepeats(self.callSites, self.tailCallReturns)
        }

        private static func isSorted(_ addresses: [UInt64]) -> Bool {
            addresses.indices.dropFirst().allSatisfy { addresses[$0 - 1] <= addresses[$0] }
        }

        /// The union of two sorted lists, sorted, each address once.
        private static func mergedWithoutRepeats(_ first: [UInt64], _ second: [UInt64]) -> [UInt64] {
            var result: [UInt64] = []
            result.reserveCapacity(first.count + second.count)
            var i = 0
            var j = 0
            while i < first.count || j < second.count {
                let next: UInt64
                if j == second.count || (i < first.count && first[i] <= second[j]) {
                    next = first[i]
                    i += 1
                } else {
                    next = second[j]
                    j += 1
                }
                if result.last != next { result.append(next) }
            }
            return result
        }

        /// Whether `pc` is one of ``all``.
        public func contains(_ pc: UInt64) -> Bool {
            all.lastIndex(atMost: pc, by: { $0 }).map { all[$0] == pc } ?? false
        }
    }

    /// What PC mode records (`__sanitizer_cov_trace_pc`).
    public var pc: Sites
    /// The PCs of CMP-mode records (the comparison and switch callbacks).
    public var comparisons: Sites
    /// The length of the call before every PC here (x86's `call rel32`): PC minus this is the call.
    public static let callLength: UInt64 = 5

    /// The sites of PC mode, or of CMP mode.
    public func sites(comparisons mode: Bool) -> Sites { mode ? comparisons : pc }
}

/// The relative branches of an image that matter for coverage, found by byte pattern.
struct BranchScan {
    /// `call rel32`: where the instruction is, and its target.
    var calls: [(at: UInt64, target: UInt64)] = []
    /// `jmp rel32` and `jcc rel32`: where the instruction is, and its target.
    var jumps: [(at: UInt64, target: UInt64)] = []
}

extension KernelImage {
    /// Scans every executable section for calls, tail calls and the calls into tail-calling
    /// functions (see ``CoverablePCs``). Fails when the image has no `__sanitizer_cov_trace_pc`.
    public func coverablePCs() throws(KernelImageError) -> CoverablePCs {
        guard let tracePC = address(of: CoverageCallbacks.pc[0]) else {
            throw KernelImageError(
                path: path, "has no \(CoverageCallbacks.pc[0]): this kernel was built without CONFIG_KCOV, so no PC is coverable")
        }
        let comparisonTargets = Set(CoverageCallbacks.comparisons.compactMap(address(of:)))
        let branches = scanBranches()
        return CoverablePCs(
            pc: sites(of: [tracePC], in: branches), comparisons: sites(of: comparisonTargets, in: branches))
    }

    /// Call sites of `callbacks`, and returns from calls into functions that can tail-call them.
    private func sites(of callbackList: Set<UInt64>, in branches: BranchScan) -> CoverablePCs.Sites {
        let callbacks = AddressSet(callbackList)
        var callSites: [UInt64] = []
        for call in branches.calls where callbacks.contains(call.target) { callSites.append(call.at + CoverablePCs.callLength) }
        guard callbacks.count > 0 else { return CoverablePCs.Sites(callSites: [], tailCallReturns: []) }

        // Functions (by start address) that can end in a jump to a callback, directly or through
        // other functions' tail jumps, to a fixed point. Jumps from code outside every function
        // symbol (gcc's out-of-line `.altinstr_aux` paths) belong to the functions that jump to
        // the nearest entry point below them.
        // A worklist over the jumps by target, so each jump is looked at once (a chain of n
        // functions each tail-jumping to the next takes n steps, not n²).
        let entries = orphanEntries(branches.jumps)
        var jumpsByTarget: [UInt64: [UInt64]] = [:]
        for jump in branches.jumps { jumpsByTarget[jump.target, default: []].append(jump.at) }
        var tailCalling = AddressSet([])
        var pending = Array(callbackList)
        while let target = pending.popLast() {
            for at in jumpsByTarget[target] ?? [] {
                for owner in owners(of: at, orphanEntries: entries) where tailCalling.insert(owner) {
                    // A callback's own address is already pending.
                    if !callbacks.contains(owner) { pending.append(owner) }
                }
            }
        }
        var returns: [UInt64] = []
        for call in branches.calls where tailCalling.contains(call.target) { returns.append(call.at + CoverablePCs.callLength) }
        return CoverablePCs.Sites(callSites: callSites, tailCallReturns: returns)
    }

    /// The start of the function containing `address`; for code outside every function, the
    /// functions that jump to the nearest entry at or below it.
    private func owners(of address: UInt64, orphanEntries: [(entry: UInt64, from: [UInt64])]) -> [UInt64] {
        if let function = function(containing: address) { return [function.address] }
        return orphanEntries.lastIndex(atMost: address, by: \.entry).map { orphanEntries[$0].from } ?? []
    }

    /// Jump targets outside every function, sorted, with the functions that jump there.
    private func orphanEntries(_ jumps: [(at: UInt64, target: UInt64)]) -> [(entry: UInt64, from: [UInt64])] {
        var entries: [UInt64: Set<UInt64>] = [:]
        for jump in jumps where function(containing: jump.target) == nil && isExecutable(jump.target) {
            guard let source = function(containing: jump.at) else { continue }
            entries[jump.target, default: []].insert(source.address)
        }
        return entries.map { ($0.key, Array($0.value)) }.sorted { $0.entry < $1.entry }
    }

    private func isExecutable(_ address: UInt64) -> Bool {
        executableSections.contains { address >= $0.address && address - $0.address < UInt64($0.bytes.count) }
    }

    /// Every `call rel32`, `jmp rel32` and `jcc rel32` whose target is a function's first byte,
    /// a coverage callback, or executable code outside every function; and tail `jmp rel8`s.
    func scanBranches() -> BranchScan {
        let starts = AddressSet(functions.lazy.map(\.address))
        var scan = BranchScan()
        var zone = FunctionZone()
        // Alternative replacements are copied over their patch sites before they run: no PC of theirs is ever recorded.
        for section in executableSections where section.bytes.count >= 6 && section.name != ".altinstr_replacement" {
            let bytes = section.bytes
            guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { continue }
            let end = bytes.count - 4
            var offset = -1
            while true {
                offset += 1
                // Most bytes start none of the four: 0x0f, 0xe8, 0xe9, 0xeb.
                while offset < end, base[offset] != 0x0f, base[offset] &- 0xe8 > 3 { offset += 1 }
                guard offset < end else { break }
                let opcode = base[offset]
                if opcode == 0xea { continue }
                if opcode == 0xeb, let jump = shortTailJump(at: section.address &+ UInt64(offset), displacement: bytes[offset + 1], starts: starts) {
                    scan.jumps.append(jump)
                    continue
                }
                let isJcc = opcode == 0x0f && offset + 5 < bytes.count && bytes[offset + 1] & 0xf0 == 0x80
                guard opcode == 0xe8 || opcode == 0xe9 || isJcc else { continue }
                let displacementAt = isJcc ? offset + 2 : offset + 1
                let displacement = Int32(bitPattern: bytes.loadUnaligned(fromByteOffset: displacementAt, as: UInt32.self))
                let at = section.address &+ UInt64(offset)
                let next = section.address &+ UInt64(displacementAt + 4)
                let target = next &+ UInt64(bitPattern: Int64(displacement))
                let interesting = starts.contains(target) || (opcode != 0xe8 && !zone.containsFunctionCovering(target, at: at, in: functions) && isExecutable(target) && function(containing: target) == nil)
                guard interesting else { continue }
                if opcode == 0xe8 { scan.calls.append((at, target)) } else { scan.jumps.append((at, target)) }
            }
        }
        return scan
    }

    /// The function symbol a scan is in, kept as the scan moves forward, to answer most
    /// "is this jump target inside some function" questions without a search: a jump's target is
    /// usually inside its own function.
    private struct FunctionZone {
        /// The last function at or below the scan position, its span up to the next function
        /// symbol's address, and the end of its bytes.
        private var start: UInt64 = 1
        private var next: UInt64 = 0
        private var end: UInt64 = 0

        /// Whether `function(containing: target)` is known to find a function: `target` lies in
        /// the span of the last function at or below `at` and inside its bytes. False means "ask".
        @inline(__always)
        mutating func containsFunctionCovering(_ target: UInt64, at: UInt64, in functions: [FunctionSymbol]) -> Bool {
            if at < start || at >= next {
                guard let index = functions.lastIndex(atMost: at, by: \.address) else {
                    (start, next, end) = (1, 0, 0)
                    return false
                }
                start = functions[index].address
                next = index + 1 < functions.count ? functions[index + 1].address : .max
                let size = max(functions[index].size, 1)
                end = start &+ size < start ? .max : start &+ size
            }
            return target >= start && target < next && target < end
        }
    }

    /// A `jmp rel8` that is its function's last instruction and lands on another function's
    /// first byte: a tail call to a neighbour. (Anywhere else a stray 0xeb byte is too likely.)
    private func shortTailJump(at address: UInt64, displacement: UInt8, starts: AddressSet) -> (at: UInt64, target: UInt64)? {
        let next = address &+ 2
        let target = next &+ UInt64(bitPattern: Int64(Int8(bitPattern: displacement)))
        guard starts.contains(target), let function = function(containing: address), function.address &+ function.size == next,
              function.address != target
        else { return nil }
        return (address, target)
    }

    /// Whether the bytes before `pc` end an indirect `call` (`ff /2`, any addressing form, with
    /// or without a REX prefix), or a direct call to a retpoline thunk: how a PC recorded after an
    /// indirect call into a tail-calling function is recognized.
    public func followsIndirectCall(_ pc: UInt64) -> Bool {
        guard let section = executableSections.first(where: { pc > $0.address && pc - $0.address <= UInt64($0.bytes.count) }) else {
            return false
        }
        let end = Int(pc - section.address)
        let bytes = section.bytes
        if end >= 5, bytes[end - 5] == 0xe8 {
            let displacement = Int32(bitPattern: bytes.loadUnaligned(fromByteOffset: end - 4, as: UInt32.self))
            let target = pc &+ UInt64(bitPattern: Int64(displacement))
            if let thunk = function(containing: target), thunk.address == target, thunk.name.hasPrefix("__x86_indirect_") { return true }
        }
        // (length, ModRM mask, ModRM value) for mod/rm forms of `ff /2` and their total length.
        for length in [2, 3, 4, 6, 7] where end >= length {
            let start = end - length
            guard bytes[start] == 0xff else { continue }
            let modrm = bytes[start + 1]
            guard modrm & 0x38 == 0x10 else { continue }  // reg field 2: call
            let mode = modrm >> 6
            let rm = modrm & 7
            let sib = rm == 4 && mode != 3
            var expected = 2 + (sib ? 1 : 0)
            switch mode {
            case 0: expected += rm == 5 ? 4 : (sib && bytes[start + 2] & 7 == 5 ? 4 : 0)
            case 1: expected += 1
            case 2: expected += 4
            default: break
            }
            if expected == length { return true }
        }
        return false
    }
}
