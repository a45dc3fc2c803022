/// What gVisor shows a program that could take it for Linux.
///
/// gVisor's kcov emulation answers Linux's ioctl numbers at Linux's path, so the Linux backend
/// must recognise the sandbox itself (see `Docs/kcov-gvisor.md`).
public enum GVisorSignature {
    /// The version field of `uname` (and the tail of `/proc/version`) in every gVisor release: a
    /// fixed, fake date.
    public static let kernelVersion = "#1 SMP Sun Jan 10 15:06:54 PST 2016"
}
