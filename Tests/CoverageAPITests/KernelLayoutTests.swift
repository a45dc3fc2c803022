import CoverageAPI
import Foundation
@testable import LinuxBackend
import ReferenceModels
import Testing

/// `LinuxKernelLayout` over made-up procfs and sysfs trees (Docs/modules.md).
@Suite struct KernelLayoutTests {
    /// A tree of files and directories: path to contents; a directory lists the paths below it.
    static func reader(_ files: [String: Data]) -> LinuxKernelLayout {
        LinuxKernelLayout(
            readFile: { files[$0] },
            listDirectory: { folder in
                let names = files.keys.filter { $0.hasPrefix(folder + "/") }.map { String($0.dropFirst(folder.count + 1)) }
                return names.isEmpty ? nil : names.filter { !$0.contains("/") }
            })
    }

    /// An ELF note section holding one NT_GNU_BUILD_ID note, after an unrelated note.
    static func notes(buildID: [UInt8]) -> Data {
        func word(_ value: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(value).littleEndian) { Array($0) } }
        let other = word(6) + word(2) + word(1) + Array("Linux\0".utf8) + [0, 0] + [7, 7, 0, 0]
        let gnu = word(4) + word(buildID.count) + word(3) + Array("GNU\0".utf8) + buildID
        return Data(other + gnu)
    }

    static let tree: [String: Data] = [
        "/proc/kallsyms": Data("ffffffff9f000000 T startup_64\nffffffff9f000000 T _text\nffffffff9f001000 t helper\n".utf8),
        "/proc/sys/kernel/osrelease": Data("6.12.117\n".utf8),
        "/proc/modules": Data("kcov_test_module 12288 0 - Live 0xffffffffc0200000 (O)\nbroken line\n".utf8),
        "/sys/module/kcov_test_module/sections/.text": Data("0xffffffffc0200000\n".utf8),
        "/sys/module/kcov_test_module/sections/.exit.text": Data("0xffffffffc0200180\n".utf8),
        "/sys/module/kcov_test_module/notes/.note.gnu.build-id": notes(buildID: [0xde, 0xad, 0xbe, 0xef, 0x01]),
    ]

    @Test func readsTextBaseModulesSectionsAndBuildID() throws {
        let layout = try #require(Self.reader(Self.tree).read())
        #expect(layout.release == "6.12.117")
        #expect(layout.text == 0xffff_ffff_9f00_0000)
        #expect(layout.unavailable == nil)
        #expect(layout.modules == [
            KernelLayout.Module(
                name: "kcov_test_module", base: 0xffff_ffff_c020_0000, size: 12_288,
                sections: [".text": 0xffff_ffff_c020_0000, ".exit.text": 0xffff_ffff_c020_0180], buildID: "deadbeef01"),
        ])
        // The test kernel's image links _text at 0xffffffff81000000: the slide is the difference.
        #expect(layout.slide(vmlinuxText: 0xffff_ffff_8100_0000) == 0x1e00_0000)
    }

    @Test func zeroedAddressesSayWhy() throws {
        var tree = Self.tree
        tree["/proc/kallsyms"] = Data("0000000000000000 T _text\n".utf8)
        let layout = try #require(Self.reader(tree).read())
        #expect(layout.text == nil)
        #expect(layout.unavailable?.contains("kptr_restrict") == true)

        tree = Self.tree
        tree["/proc/modules"] = Data("kcov_test_module 12288 0 - Live 0x0000000000000000\n".utf8)
        tree["/sys/module/kcov_test_module/sections/.text"] = Data("0x0000000000000000\n".utf8)
        let modules = try #require(Self.reader(tree).read())
        #expect(modules.text != nil)
        #expect(modules.unavailable?.contains("/sys/module/kcov_test_module/sections") == true)
    }

    @Test func withoutKallsymsThereIsNoLayout() {
        var tree = Self.tree
        tree["/proc/kallsyms"] = nil
        #expect(Self.reader(tree).read() == nil)
    }

    @Test func malformedNotesGiveNoBuildID() {
        let good = Self.notes(buildID: [1, 2, 3])
        for cut in 0..<(good.count - 1) {
            // A note cut anywhere gives no id, never a trap.
            let truncated = Self.reader(["/proc/kallsyms": Data("ffffffff81000000 T _text\n".utf8),
                "/proc/modules": Data("m 1 0 - Live 0xffffffffc0000000\n".utf8),
                "/sys/module/m/notes/.note.gnu.build-id": good.prefix(cut)]).read()
            #expect(truncated?.modules.first?.buildID == nil)
        }
    }

    @Test func aModelKernelHasNoLayout() {
        #expect(LinuxKcovBackend(kernel: LinuxKcovModel()).kernelLayout() == nil)
    }
}
