/// gVisor's synthetic PCs: the sentry has no machine PCs for Go coverage blocks, so it makes up
/// one identifier per block. Two formats have shipped.
public enum SyntheticPC: Sendable, Hashable {
    /// Since 2025-11: `pc = ~(block | function << 8 | package << 20)` (64-bit NOT). `package`
    /// indexes the runtime's coverage metadata list, `function` the package's functions,
    /// `block` the function's counters. Fields are not masked when gVisor encodes them, so a
    /// function with more than 256 blocks or a package with more than 4096 functions collides.
    case current(package: UInt64, function: UInt16, block: UInt8)
    /// 2020-12 to 2025-11: `pc = file << 16 + block`, `file` indexing the sorted instrumented files.
    case legacy(file: UInt64, block: UInt16)

    /// The PC this block id encodes to.
    public var pc: UInt64 {
        switch self {
        case .current(let package, let function, let block):
            ~(UInt64(block) | UInt64(function) << 8 | package << 20)
        case .legacy(let file, let block):
            file << 16 + UInt64(block)
        }
    }

    /// Which format a PC is in: current-format PCs of package indexes below 2^23 have their top
    /// 21 bits set (gVisor's own test checks `pc > 0xffffffff7fffffff`), legacy PCs are below 2^48.
    public enum Format: String, Sendable, Hashable, Codable {
        case current, legacy
    }

    /// The format of `pc`, or `nil` when it fits neither.
    public static func format(of pc: UInt64) -> Format? {
        if pc >> 43 == (1 << 21) - 1 { return .current }
        if pc >> 48 == 0 { return .legacy }
        return nil
    }

    /// Decodes `pc` in `format`.
    public static func decode(_ pc: UInt64, as format: Format) -> SyntheticPC {
        switch format {
        case .current:
            let value = ~pc
            return .current(package: value >> 20, function: UInt16(value >> 8 & 0xfff), block: UInt8(value & 0xff))
        case .legacy:
            return .legacy(file: pc >> 16, block: UInt16(pc & 0xffff))
        }
    }

    /// The one format every PC of a trace is in; `nil` for an empty trace or a mix.
    public static func format(ofTrace pcs: some Sequence<UInt64>) -> Format? {
        var found: Format?
        for pc in pcs {
            guard let format = format(of: pc), found == nil || found == format else { return nil }
            found = format
        }
        return found
    }
}
