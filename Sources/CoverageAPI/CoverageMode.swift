/// What the kernel records while coverage is enabled.
public enum CoverageMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// One entry per covered basic block (or function, for function-granular backends).
    case pc
    /// One record per executed comparison: operand size, constant flag, both operands and the PC.
    case comparisons = "cmp"
}
