/// One frame of a PC's source location: a function and the line in it. A PC inside inlined code
/// has several, innermost first. Lines, columns and discriminators are kept in 32 bits, as DWARF's
/// line-table registers are; a larger value set here is clamped.
public struct SymbolFrame: Sendable, Hashable, CustomStringConvertible {
    /// The function (for the innermost frame, the inlined function the PC is in); `nil` when
    /// neither the DWARF nor the symbol table names it.
    public var function: String?
    /// The source file, as addr2line prints it (the compilation directory joined with relative
    /// names, not normalized); `??` when unknown.
    public var file: String
    /// The 1-based line; 0 when unknown (line 0 is also what compilers give code of no line).
    public var line: Int {
        get { Int(numbers[0]) }
        set { numbers[0] = Int32(clamping: newValue) }
    }
    /// The 1-based column; 0 when unknown.
    public var column: Int {
        get { Int(numbers[1]) }
        set { numbers[1] = Int32(clamping: newValue) }
    }
    /// The line table's discriminator for the innermost frame (which block of a line); 0 otherwise.
    public var discriminator: Int {
        get { Int(UInt32(bitPattern: numbers[2])) }
        set { numbers[2] = Int32(bitPattern: UInt32(clamping: newValue)) }
    }
    /// Where ``function`` is defined: the `DW_AT_decl_file` of its subprogram (through
    /// `DW_AT_abstract_origin` and `DW_AT_specification`, so an inlined copy, a `.part`/`.isra`
    /// clone or a cold part names its source function's file), spelled like ``file``; `nil` when
    /// the DWARF has no function here (assembly, the symbol table named it) or no declaration.
    public var functionFile: String?
    /// The 1-based `DW_AT_decl_line` of that subprogram (the line of its definition; for a
    /// macro-generated function, the macro's use); 0 when unknown.
    public var functionLine: Int {
        get { Int(numbers[3]) }
        set { numbers[3] = Int32(clamping: newValue) }
    }
    /// ``line``, ``column``, ``discriminator`` and ``functionLine`` in 32 bits each, the width of
    /// DWARF's line-table registers (§6.2.2; a value set past it is clamped), as one vector: so a frame is seven machine words,
    /// which Swift moves in registers. With four more words, making a frame and putting it in an
    /// array copied and destroyed it (three string retains and releases) for every frame of a
    /// batch, 7% of symbolizing a whole kernel.
    private var numbers: SIMD4<Int32>

    public init(
        function: String?, file: String, line: Int, column: Int = 0, discriminator: Int = 0, functionFile: String? = nil, functionLine: Int = 0
    ) {
        self.function = function
        self.file = file
        self.functionFile = functionFile
        numbers = SIMD4(
            Int32(clamping: line), Int32(clamping: column), Int32(bitPattern: UInt32(clamping: discriminator)), Int32(clamping: functionLine))
    }

    /// `function file:line`, with addr2line's `??` and `?` for what is unknown.
    public var description: String {
        "\(function ?? "??") \(file):\(line == 0 ? "?" : String(line))"
    }
}

/// Why a file cannot be symbolized against: what is wrong with it and what to do.
public struct SymbolizerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong with the file.
    public enum Code: String, Sendable, Hashable, Codable {
        /// It cannot be opened or read.
        case unreadable
        /// It is not an ELF file (a bzImage, a text file).
        case notELF
        /// It is an ELF file without DWARF debug information (stripped, or built without it).
        case noDebugInfo
        /// Its DWARF cannot be read.
        case badDebugInfo
        /// Its debug sections are compressed with an algorithm this libelf cannot decompress
        /// (zstd before elfutils 0.189).
        case unsupportedCompression
    }

    public var code: Code
    /// The file that was opened.
    public var path: String
    /// One sentence on what is wrong and what to do.
    public var message: String

    public init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
