#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension SystemKernel {
    /// The host's uname(3) system name ("Linux", "NetBSD", "FreeBSD", "OpenBSD"), or `nil` if uname
    /// fails. Backends of one kernel and backend selection ask it before they touch any device, so
    /// no kernel ever receives another kernel's request numbers (Docs/README.md#telling-the-kernels-apart).
    package static func hostSystemName() -> String? {
        var names = utsname()
        guard uname(&names) == 0 else { return nil }
        return withUnsafeBytes(of: &names.sysname) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
