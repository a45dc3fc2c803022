extension LinuxKcovModel {
    /// The Linux releases the model follows and what kcov does differently in each, as data
    /// (Docs/kcov-linux.md#version-differences): one row per test kernel the project builds.
    ///
    /// Everything not listed here is the same in both trees' `kernel/kcov.c` and
    /// `include/linux/kcov.h` as far as a 64-bit x86 user can observe.
    package struct KernelVersion: Sendable, Hashable, CustomStringConvertible {
        /// `MAJOR.MINOR`, as `linux-source-MAJOR.MINOR` names it.
        package let release: String
        /// `write_comp_data` first returns when the user-writable count is `max_pos / 32` or more
        /// (the 6.12.117 stable fix "kcov: ignore an out-of-range comparison count in
        /// write_comp_data()"). Without it only the wrapping bound `(1 + 4 * count + 4) * 8 <= max_pos`
        /// stands, so a count such as 2^61 passes it and the record lands at the wrapped offset
        /// `(1 + 4 * count) * 8 mod 2^64`, inside the buffer (Docs/kcov-linux.md#cmp-mode).
        package let boundsComparisonCount: Bool

        /// Debian's `linux-source-6.1` (6.1.192): no early return in `write_comp_data`.
        package static let v6_1 = KernelVersion(release: "6.1", boundsComparisonCount: false)
        /// Debian's `linux-source-6.12` (6.12.117), the default test kernel.
        package static let v6_12 = KernelVersion(release: "6.12", boundsComparisonCount: true)
        /// Every release the model has data for.
        package static let all: [KernelVersion] = [.v6_1, .v6_12]

        /// The row for a kernel release string: `6.1`, `6.1.192` or `uname -r`'s `6.1.0-28-amd64`
        /// all name 6.1; `nil` for a release the model has no data for.
        package init?(release: String) {
            let fields = release.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2 else { return nil }
            let minor = fields[1].prefix { $0.isNumber }
            guard let row = Self.all.first(where: { $0.release == "\(fields[0]).\(minor)" }) else { return nil }
            self = row
        }

        private init(release: String, boundsComparisonCount: Bool) {
            self.release = release
            self.boundsComparisonCount = boundsComparisonCount
        }

        package var description: String { "Linux \(release)" }
    }
}
