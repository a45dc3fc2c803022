import CoverageAPI
import Foundation

/// `"kernel": {"release", "text"?, "unavailable"?, "modules": [{"name", "base", "size", "sections": {NAME: ADDRESS}, "buildID"?}]}`,
/// version 3 (Docs/modules.md): addresses are hex strings like PCs, `size` a number of bytes.
struct KernelLayoutCoding: Codable {
    var layout: KernelLayout

    enum Key: String, CodingKey { case release, text, unavailable, modules }
    enum ModuleKey: String, CodingKey { case name, base, size, sections, buildID }

    init(_ layout: KernelLayout) { self.layout = layout }

    init(from decoder: any Decoder) throws {
        let fields = try Fields<Key>(decoder, expected: #"a kernel layout {"release", "text"?, "modules"}"#)
        let modules = try fields.list(.modules, of: ModuleCoding.self, "a list of modules")?.map(\.module) ?? []
        layout = KernelLayout(
            release: try fields.required(.release, "the kernel release as a string") { try $0.decode(String.self, forKey: $1) },
            text: try fields.optional(.text, HexWord.Kind.pc.expected) { try $0.decode(HexWord.self, forKey: $1).value },
            unavailable: try fields.string(.unavailable, "the reason as a string"), modules: modules)
    }

    struct ModuleCoding: Decodable {
        var module: KernelLayout.Module

        init(from decoder: any Decoder) throws {
            let fields = try Fields<ModuleKey>(decoder, expected: #"a module {"name", "base", "size", "sections"}"#)
            let sections = try fields.optional(.sections, #"an object of section names to hex addresses"#) {
                try $0.decode([String: HexWord].self, forKey: $1)
            } ?? [:]
            module = KernelLayout.Module(
                name: try fields.required(.name, "the module's name as a string") { try $0.decode(String.self, forKey: $1) },
                base: try fields.required(.base, HexWord.Kind.pc.expected) { try $0.decode(HexWord.self, forKey: $1).value },
                size: try fields.required(.size, "the module's size in bytes (a whole number)") { try $0.decode(UInt64.self, forKey: $1) },
                sections: sections.mapValues(\.value), buildID: try fields.string(.buildID, "the build id as a hex string"))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(layout.release, forKey: .release)
        try container.encodeIfPresent(layout.text.map(HexWord.init), forKey: .text)
        try container.encodeIfPresent(layout.unavailable, forKey: .unavailable)
        var list = container.nestedUnkeyedContainer(forKey: .modules)
        for module in layout.modules {
            var object = list.nestedContainer(keyedBy: ModuleKey.self)
            try object.encode(module.name, forKey: .name)
            try object.encode(HexWord(module.base), forKey: .base)
            try object.encode(module.size, forKey: .size)
            try object.encode(module.sections.mapValues(HexWord.init), forKey: .sections)
            try object.encodeIfPresent(module.buildID, forKey: .buildID)
        }
    }

    /// The layout as one line of JSON, keys sorted (for the fast writer).
    static func json(_ layout: KernelLayout) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(KernelLayoutCoding(layout)), as: UTF8.self)
    }
}
