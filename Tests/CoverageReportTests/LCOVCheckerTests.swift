import Testing

/// The checker itself: a good tracefile passes, and for every rule a tracefile that breaks only
/// that rule is caught by it (and by no other rule).
@Suite("LCOV tracefile checker (lcov 2.x rules)")
struct LCOVCheckerTests {
    /// Two functions sharing a start line (one group), one more, lines in and out of spans.
    static let good = """
        TN:boot_1
        SF:/src/kernel/nsproxy.c
        FN:10,14,__do_sys_setns
        FN:10,14,__se_sys_setns
        FN:20,22,free_nsproxy
        FNDA:3,__do_sys_setns
        FNDA:0,__se_sys_setns
        FNDA:0,free_nsproxy
        FNF:2
        FNH:1
        DA:5,1
        DA:10,2
        DA:11,2
        DA:12,0
        DA:20,0
        DA:21,0
        LF:6
        LH:3
        end_of_record
        TN:boot_1
        SF:/src/include/linux/file.h
        FNL:0,60,64
        FNA:0,1,fdput
        FNF:1
        FNH:1
        DA:60,1
        DA:63,1
        LF:2
        LH:2
        end_of_record

        """

    /// `good` with `old` replaced by `new` (the first occurrence).
    static func breaking(_ old: String, _ new: String) -> String {
        let range = good.range(of: old)!
        return good.replacingCharacters(in: range, with: new)
    }

    /// One defect per rule.
    static let defects: [(rule: LCOVTracefileChecker.Rule, text: String)] = [
        (.structure, breaking("LF:2\nLH:2\nend_of_record\n", "LF:2\nLH:2\n")),
        (.structure, breaking("DA:5,1\n", "DA:5,1\nXY:1\n")),
        (.testName, good.replacingOccurrences(of: "TN:boot_1", with: "TN:boot-1")),
        (.cleanPath, breaking("SF:/src/include/linux/file.h", "SF:/src/include//linux/file.h")),
        (.cleanPath, breaking("SF:/src/include/linux/file.h", "SF:/src/arch/x86/events/amd/../file.h")),
        (.oneRecordPerFile, breaking("SF:/src/include/linux/file.h", "SF:/src/kernel/nsproxy.c")),
        (.lineNumber, breaking("DA:5,1", "DA:0,1")),
        (.lineNumber, breaking("FN:20,22,free_nsproxy", "FN:20,19,free_nsproxy")),
        (.count, breaking("DA:12,0", "DA:12,-1")),
        (.lineOnce, breaking("DA:12,0\n", "DA:12,0\nDA:12,0\n")),
        (.functionDeclared, breaking("FNDA:0,free_nsproxy", "FNDA:0,free_nsproxy\nFNDA:0,put_nsproxy")),
        (.functionOnce, breaking("FN:20,22,free_nsproxy\n", "FN:20,22,free_nsproxy\nFN:10,14,free_nsproxy\n")),
        (.sharedStart, breaking("FN:10,14,__se_sys_setns", "FN:10,12,__se_sys_setns")),
        (.summary, breaking("FNF:2", "FNF:3")),
        (.summary, breaking("LH:3", "LH:2")),
        (.consistency, breaking("FNDA:3,__do_sys_setns\nFNDA:0,__se_sys_setns\nFNDA:0,free_nsproxy\nFNF:2\nFNH:1", "FNDA:0,__do_sys_setns\nFNDA:0,__se_sys_setns\nFNDA:0,free_nsproxy\nFNF:2\nFNH:0")),
        (.consistency, breaking("DA:10,2\nDA:11,2\nDA:12,0\nDA:20,0\nDA:21,0\nLF:6\nLH:3", "DA:10,0\nDA:11,0\nDA:12,0\nDA:20,0\nDA:21,0\nLF:6\nLH:1")),
        (.functionStartLine, breaking("DA:20,0\nDA:21,0\nLF:6", "DA:21,0\nLF:5")),
    ]

    @Test("A tracefile that keeps every rule passes")
    func goodPasses() {
        #expect(LCOVTracefileChecker.check(Self.good).map(\.description) == [])
    }

    @Test("Each rule catches its defect, and only that rule fires", arguments: Self.defects.indices)
    func defectIsCaught(_ index: Int) {
        let (rule, text) = Self.defects[index]
        let violations = LCOVTracefileChecker.check(text)
        #expect(!violations.isEmpty, "\(rule) did not catch its defect")
        #expect(Set(violations.map(\.rule)) == [rule], "\(violations.map(\.description))")
    }

    @Test("Every rule has a defective tracefile")
    func everyRuleIsProven() {
        #expect(Set(Self.defects.map(\.rule)) == Set(LCOVTracefileChecker.Rule.allCases))
    }
}
