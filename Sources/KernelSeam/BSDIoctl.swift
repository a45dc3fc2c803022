/// The BSDs' ioctl request encoding, `_IOC(inout, group, num, len)` of `<sys/ioccom.h>`, the same
/// on NetBSD, FreeBSD and OpenBSD: the number in bits 0–7, the group in 8–15, the parameter length
/// in 16–28 (13 bits, `IOCPARM_MASK`) and the direction in 29–31. Requests are 32-bit and
/// zero-extended into the `unsigned long` of ioctl(2), never sign-extended.
package enum BSDIoctl {
    /// `IOCPARM_MASK`: `(1 << IOCPARM_SHIFT) - 1` with `IOCPARM_SHIFT` 13.
    package static let parameterMask: UInt32 = 0x1fff
    /// `IOC_VOID`: no parameter is copied (FreeBSD's `_IOWINT` is `IOC_VOID` with the length of an
    /// `int`, which makes `sys_ioctl` pass the argument itself as the value).
    package static let void: UInt32 = 0x2000_0000
    /// `IOC_IN`: a parameter copied into the kernel.
    package static let input: UInt32 = 0x8000_0000

    /// The request for `direction`, `group`, `number` and a parameter of `length` bytes.
    package static func request(direction: UInt32, group: Character, number: UInt32, length: UInt32) -> UInt {
        precondition(length <= parameterMask, "ioctl parameter length \(length) does not fit 13 bits")
        return UInt(direction | (length & parameterMask) << 16 | UInt32(group.asciiValue!) << 8 | number)
    }
}
