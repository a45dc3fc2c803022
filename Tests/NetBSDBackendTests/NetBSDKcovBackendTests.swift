import CoverageAPI
import Foundation
import Conformance
import KernelSeam
import LinuxBackend
import NetBSDBackend
import NetBSDConformance
import ReferenceModels
import TestSupport
import Testing

@Suite struct NetBSDKcovBackendTests {
    @Test("the same misuse gives the same code on the Linux and the NetBSD model", arguments: Misuse.shared)
    func sameCodeAsLinux(_ misuse: Misuse) {
        let linux = misuse.error(on: LinuxKcovBackend(kernel: LinuxKcovModel()))?.code
        let netbsd = misuse.error(on: NetBSDKcovBackend(kernel: NetBSDKcovModel()))?.code
        #expect(linux != nil)
        #expect(netbsd == linux, "\(misuse): Linux \(String(describing: linux)), NetBSD \(String(describing: netbsd))")
    }

    @Test func netBSDOnlyErrnos() throws {
        let backend = NetBSDKcovBackend(kernel: NetBSDKcovModel())
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        let error = #expect(throws: CoverageError.self) { try backend.enable(fd, rawMode: 3) }
        #expect(error?.code == .invalidArgument && error?.errno == EINVAL)
        // ENOBUFS before SETBUFSIZE, with a message that says what to do.
        let early = #expect(throws: CoverageError.self) { try backend.enable(fd, rawMode: 0) }
        #expect(early?.code == .invalidState && early?.errno == ENOBUFS && early!.message.contains("set the buffer size first"))
        try backend.initialize(fd, words: 2)
        let twice = #expect(throws: CoverageError.self) { try backend.initialize(fd, words: 2) }
        #expect(twice?.code == .busy && twice?.errno == EEXIST)
        // A mapping longer than 2 MiB is EINVAL, a mapping past the buffer ENOMEM.
        let huge = #expect(throws: CoverageError.self) { _ = try backend.mapBuffer(fd, words: 262_145) }
        #expect(huge?.code == .bufferSize && huge?.errno == EINVAL)
        let long = #expect(throws: CoverageError.self) { _ = try backend.mapBuffer(fd, words: 4096) }
        #expect(long?.code == .invalidState && long?.errno == ENOMEM)
        // Exactly two entries map; so does a shorter length.
        let address = try backend.mapBuffer(fd, words: 2)
        backend.unmapBuffer(address, words: 2)
        try backend.enable(fd, rawMode: 0)
        let enabled = #expect(throws: CoverageError.self) { try backend.initialize(fd, words: 2) }
        #expect(enabled?.code == .busy && enabled?.errno == EBUSY)
        try backend.disable(fd)
        let disabled = #expect(throws: CoverageError.self) { try backend.disable(fd) }
        #expect(disabled?.code == .notOwner && disabled?.errno == ENOENT)
    }

    @Test func openErrorsSayWhatToDo() {
        let cases: [(NetBSDKcovModel, CoverageError.Code, String)] = [
            (NetBSDKcovModel(deviceExists: false), .deviceMissing, "MAKEDEV"),
            (NetBSDKcovModel(driverPresent: false), .deviceMissing, "options KCOV"),
            (NetBSDKcovModel(accessAllowed: false), .permissionDenied, "root"),
        ]
        for (model, expected, hint) in cases {
            let backend = NetBSDKcovBackend(kernel: model)
            let error = #expect(throws: CoverageError.self) { _ = try backend.openDevice() }
            #expect(error?.code == expected)
            #expect(error?.message.contains(hint) == true, "\(String(describing: error))")
            #expect(!backend.availability().available)
        }
        #expect(NetBSDKcovBackend(kernel: NetBSDKcovModel()).availability().available)
    }

    @Test func onLinuxTheHostBackendSaysItIsNotNetBSD() {
        let backend = NetBSDKcovBackend()
        let availability = backend.availability()
        #expect(!availability.available)
        #expect(availability.reason.contains("not NetBSD"), "\(availability.reason)")
        let error = #expect(throws: CoverageError.self) { _ = try backend.openDevice() }
        #expect(error?.code == .deviceMissing && error?.message.contains("not NetBSD") == true)
    }

    @Test func capabilitiesAreNetBSDs() {
        let capabilities = NetBSDKcovBackend(kernel: NetBSDKcovModel()).capabilities
        #expect(capabilities.buffer?.words == 2...262_144)
        #expect(capabilities.buffer?.wordMultiple == 1)
        #expect(capabilities.remote == [.vhciPort])
        #expect(capabilities.buffer?.wordSize == 8)
        #expect(!capabilities.mapLengthMustMatch && !capabilities.requiresMapBeforeEnable && !capabilities.remapAfterDisable)
        #expect(capabilities.oneEnabledInstancePerThread && capabilities.collectsAfterClose && capabilities.perThread)
    }

    @Test func remoteAttachToAVHCIPort() throws {
        let model = NetBSDKcovModel()
        let backend = NetBSDKcovBackend(kernel: model)
        let target = NetBSDKcovModel.RemoteTarget.vhci(bus: 0, port: 1)
        let request = RemoteRequest(targets: [.vhciPort(bus: 0, port: 1)], sectionWords: 512)
        let fd = try backend.openDevice()
        defer { backend.closeDevice(fd) }
        try backend.enableRemote(fd, mode: .pc, request)
        #expect(model.remoteState(target)?.enabled == true)
        // Mapped after attaching, the fd's mapping is the remote's buffer.
        let words = 4096
        let address = try backend.mapBuffer(fd, words: words)
        defer { backend.unmapBuffer(address, words: words) }
        let buffer = CoverageBuffer(address: address, wordCount: words)
        buffer.reset()
        backend.probe()
        #expect(buffer.rawCount == 0, "the attaching thread's own syscalls are not recorded")
        #expect(model.runRemoteSection(target) == NetBSDKcovModel.remoteSectionPath.pcs.count)
        #expect(buffer.read(mode: .pc, pcKind: .kernelAddress).pcs == NetBSDKcovModel.remoteSectionPath.pcs)
        // A second fd on the same port: the port is taken.
        let other = try backend.openDevice()
        defer { backend.closeDevice(other) }
        let taken = #expect(throws: CoverageError.self) { try backend.enableRemote(other, mode: .pc, request) }
        #expect(taken?.code == .handleInUse && taken?.errno == EBUSY)
        // Any thread may disable a remote; then detach.
        POSIXThread.run {
            do throws(CoverageError) { try backend.disable(fd) } catch { Issue.record("disable from another thread: \(error)") }
        }
        #expect(model.remoteState(target)?.enabled == false)
        try backend.detachRemote(fd)
        #expect(model.descriptorState(fd)?.remote == nil)
        let again = #expect(throws: CoverageError.self) { try backend.detachRemote(fd) }
        #expect(again?.code == .invalidState && again?.errno == ENOENT)
        // An unregistered port, and a kernel without remote ioctls.
        let unknown = #expect(throws: CoverageError.self) {
            try backend.enableRemote(fd, mode: .pc, RemoteRequest(targets: [.vhciPort(bus: 9, port: 1)], sectionWords: 512))
        }
        #expect(unknown?.code == .invalidArgument && unknown?.errno == ENOENT)
        let old = NetBSDKcovBackend(kernel: NetBSDKcovModel(revision: .netbsd9))
        let oldFD = try old.openDevice()
        defer { old.closeDevice(oldFD) }
        let missing = #expect(throws: CoverageError.self) { try old.enableRemote(oldFD, mode: .pc, request) }
        #expect(missing?.code == .unsupportedOperation)
        // Other kinds are refused before any syscall; so is more than one port.
        let linuxKind = #expect(throws: CoverageError.self) {
            try backend.enableRemote(fd, mode: .pc, RemoteRequest(targets: [.common(instance: 1)], sectionWords: 512))
        }
        #expect(linuxKind?.code == .unsupportedOperation && linuxKind?.syscall == nil)
        let two = #expect(throws: CoverageError.self) {
            try backend.enableRemote(fd, mode: .pc, RemoteRequest(targets: [.vhciPort(bus: 0, port: 1), .vhciPort(bus: 0, port: 2)], sectionWords: 512))
        }
        #expect(two?.code == .invalidArgument && two?.syscall == nil)
    }

    @Test func comparisonsThroughASession() throws {
        let backend = NetBSDKcovBackend(kernel: NetBSDKcovModel())
        var session = try CoverageCollector(backend: backend, mode: .comparisons, bufferWords: 4096)
        let trace = try session.collect { backend.probe() }
        #expect(trace.comparisons.map(\.pc) == NetBSDKcovModel.probeComparisons.map(\.pc))
        #expect(trace.comparisons.allSatisfy { $0.isWellFormed })
    }

    @Test func closeWhileEnabledKeepsTheThreadBusyUntilItIsFreed() throws {
        let model = NetBSDKcovModel()
        let backend = NetBSDKcovBackend(kernel: model)
        let join = try backend.startThread {
            do throws(CoverageError) {
                let fd = try backend.openDevice()
                try backend.initialize(fd, words: 512)
                try backend.enable(fd, mode: .pc)
                backend.closeDevice(fd)
                let next = try backend.openDevice()
                defer { backend.closeDevice(next) }
                try backend.initialize(next, words: 512)
                let busy = #expect(throws: CoverageError.self) { try backend.enable(next, mode: .pc) }
                #expect(busy?.code == .busy)
            } catch {
                Issue.record("\(error)")
            }
        }
        join()
        #expect(model.liveKDCount == 0, "the freed LWP freed the closed descriptor")
    }
    /// NetBSD shows the remote's buffer only in mappings made after REMOTE_ATTACH; a session maps
    /// at init, so `remapAfterRemoteAttach` makes it map again after the attach.
    @Test func sessionRemoteMapsAgainAfterAttach() throws {
        let model = NetBSDKcovModel()
        let backend = NetBSDKcovBackend(kernel: model)
        var session = try CoverageCollector(backend: backend, bufferWords: 4096)
        try session.enableRemote(RemoteRequest(targets: [.vhciPort(bus: 0, port: 2)], sectionWords: 4096))
        model.runRemoteSection(.vhci(bus: 0, port: 2))
        let pcs = try session.read().pcs
        try session.disable()
        #expect(pcs == NetBSDKcovModel.remoteSectionPath.pcs)
        #expect(model.liveMappingCount == 1, "the mapping made before the attach was released")
    }
}
