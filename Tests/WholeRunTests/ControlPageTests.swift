import CKcovFollowProtocol
import CoverageAPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import WholeRun

/// The collector's reading of a control page (Docs/follow.md): how a task's buffer is split at
/// its execs, and why an image ran without the agent.
@Suite struct ControlPageTests {
    /// A page as the agent leaves it: `pid`, the events in order.
    final class Page {
        let base = UnsafeMutableRawPointer.allocate(byteCount: Int(KFP_CONTROL_BYTES), alignment: 64)

        init(pid: Int32, events: [(tid: Int32, kind: kfp_event_kind, position: UInt64, path: String)]) {
            base.initializeMemory(as: UInt8.self, repeating: 0, count: Int(KFP_CONTROL_BYTES))
            var header = kfp_control()
            header.magic = KFP_CONTROL_MAGIC
            header.pid = pid
            header.event_count = UInt32(events.count)
            base.storeBytes(of: header, as: kfp_control.self)
            let offset = MemoryLayout<kfp_control>.offset(of: \kfp_control.events) ?? 0
            for (index, event) in events.enumerated() {
                var record = kfp_event()
                record.tid = event.tid
                record.kind = Int32(event.kind.rawValue)
                record.position = event.position
                withUnsafeMutableBytes(of: &record.path) { bytes in
                    for (at, byte) in event.path.utf8.prefix(bytes.count - 1).enumerated() { bytes[at] = byte }
                }
                base.storeBytes(of: record, toByteOffset: offset + index * MemoryLayout<kfp_event>.stride, as: kfp_event.self)
            }
        }

        deinit { base.deallocate() }

        var view: ControlPage { ControlPage(base) }
    }

    static let task = TaskEntry(tid: 7, fd: -1, order: 3, executable: "/bin/sh")

    @Test("An exec chain splits one buffer per image; the agent's load position is labelled; a failed exec does not split")
    func execChain() {
        let page = Page(pid: 7, events: [
            (7, KFP_EVENT_EXECING, 100, "/missing"), (7, KFP_EVENT_EXEC_FAILED, 120, ""),
            (7, KFP_EVENT_EXECING, 130, "/usr/bin/a"), (7, KFP_EVENT_LOADED, 180, "/usr/bin/a"),
            (7, KFP_EVENT_EXECING, 400, "/usr/bin/b"), (7, KFP_EVENT_LOADED, 410, "/usr/bin/b"),
        ])
        let segments = withExtendedLifetime(page) { page.view.segments(of: Self.task, pid: 7, entries: 1000) }
        #expect(segments.map(\.range) == [0..<130, 130..<400, 400..<1000])
        #expect(segments.map(\.executable) == ["/bin/sh", "/usr/bin/a", "/usr/bin/b"])
        #expect(segments.map(\.agentTail) == [nil, 50, 10])
        #expect(segments.allSatisfy { $0.withoutAgent == nil })
    }

    @Test("A non-main thread's exec: its next image is the process's main task")
    func threadExec() {
        let page = Page(pid: 7, events: [(9, KFP_EVENT_EXECING, 20, "/usr/bin/a"), (7, KFP_EVENT_LOADED, 30, "/usr/bin/a")])
        let thread = TaskEntry(tid: 9, fd: -1, order: 4, executable: "/bin/sh")
        withExtendedLifetime(page) {
            #expect(page.view.segments(of: thread, pid: 7, entries: 50).map(\.tid) == [9, 7])
            #expect(page.view.execTid(9, becomes: 7))
            #expect(!page.view.execTid(8, becomes: 7), "another thread did not exec")
        }
    }

    @Test("A task is named by the image it registered in, though the collector reads its message after the task's exec loaded the next image")
    func taskRegisteredBeforeAnExec() throws {
        // A fork child of /bin/sh registered its task, then exec'd /bin/true, which loaded the agent,
        // all before the collector got to the TASK message (a loaded machine).
        let page = Page(pid: 7, events: [(7, KFP_EVENT_EXECING, 40, "/bin/true"), (7, KFP_EVENT_LOADED, 60, "/bin/true")])
        var run = try Run(request: WholeRunRequest(command: Command(path: "/bin/sh", arguments: ["sh"], environment: []), agentPath: "/agent.so"))
        defer { Glibc.close(run.listener) }
        run.processes.append(ProcessEntry(connection: -1, pid: 7, parentPid: 6, executable: "/bin/sh", control: page.base))
        var message = kfp_message()
        message.kind = UInt32(KFP_TASK.rawValue)
        message.pid = 7
        message.tid = 7
        withUnsafeMutableBytes(of: &message.text) { bytes in for (at, byte) in "/bin/sh".utf8.enumerated() { bytes[at] = byte } }
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        run.handle(message, fd: fd, process: 0)
        let task = try #require(run.processes[0].tasks.first)
        defer { Glibc.close(task.fd) }
        #expect(task.executable == "/bin/sh", "the image it registered in, not the page's newest")
        let segments = withExtendedLifetime(page) { page.view.segments(of: task, pid: 7, entries: 100) }
        #expect(segments.map(\.executable) == ["/bin/sh", "/bin/true"], "one record per image, /bin/true once")
        #expect(segments.map(\.range) == [0..<40, 40..<100])
    }

    @Test("An exec that no image answered ran without the agent; a static file is named static")
    func withoutAgent() throws {
        let page = Page(pid: 7, events: [(7, KFP_EVENT_EXECING, 60, "/bin/sh")])
        let segments = withExtendedLifetime(page) { page.view.segments(of: Self.task, pid: 7, entries: 90) }
        #expect(segments.map(\.range) == [0..<60, 60..<90])
        #expect(segments[1].withoutAgent?.contains("agent did not start") == true, "/bin/sh has an interpreter: \(segments[1].withoutAgent ?? "nil")")
        #expect(ImageCheck.hasInterpreter("/bin/sh") == true)
        #expect(ImageCheck.hasInterpreter("/etc/hostname") == nil)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wholerun-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "int main(void) { return 0; }\n".write(toFile: directory + "/s.c", atomically: true, encoding: .utf8)
        let compile = Process()
        compile.executableURL = URL(fileURLWithPath: "/usr/bin/gcc")
        compile.arguments = ["-static", "-o", directory + "/s", directory + "/s.c"]
        try compile.run()
        compile.waitUntilExit()
        #expect(ImageCheck.hasInterpreter(directory + "/s") == false)
        #expect(ImageCheck.whyWithoutAgent(directory + "/s").hasPrefix("static executable"))
    }

    @Test("The collector's command: a LOADED without an exec labels the first image; an unclaimed page says the agent never loaded")
    func command() {
        let loaded = Page(pid: 7, events: [(7, KFP_EVENT_LOADED, 5000, "/usr/bin/stress-ng")])
        withExtendedLifetime(loaded) {
            let segments = loaded.view.segments(of: Self.task, pid: 7, entries: 9000)
            #expect(segments.count == 1 && segments[0].agentTail == 5000 && segments[0].executable == "/usr/bin/stress-ng")
            #expect(!loaded.view.isUnclaimed)
        }
        let unclaimed = Page(pid: KFP_PID_UNCLAIMED, events: [])
        withExtendedLifetime(unclaimed) { #expect(unclaimed.view.isUnclaimed) }
    }

    @Test("Positions past the buffer (it filled up) clamp to its end; a page without the magic has no events")
    func badPositions() {
        let page = Page(pid: 7, events: [(7, KFP_EVENT_EXECING, 5000, "/usr/bin/a"), (7, KFP_EVENT_LOADED, 9000, "/usr/bin/a")])
        let segments = withExtendedLifetime(page) { page.view.segments(of: Self.task, pid: 7, entries: 100) }
        #expect(segments.map(\.range) == [0..<100, 100..<100])
        let blank = UnsafeMutableRawPointer.allocate(byteCount: Int(KFP_CONTROL_BYTES), alignment: 64)
        defer { blank.deallocate() }
        blank.initializeMemory(as: UInt8.self, repeating: 0xff, count: Int(KFP_CONTROL_BYTES))
        #expect(ControlPage(blank).events.isEmpty && ControlPage(blank).eventCount == 0)
        #expect(ControlPage(nil).segments(of: Self.task, pid: 7, entries: 3).map(\.range) == [0..<3])
    }

    @Test("Bad requests are refused before anything starts")
    func badRequests() {
        let command = Command(path: "/bin/true", arguments: ["/bin/true"])
        for (request, expected) in [
            (WholeRunRequest(command: command, agentPath: "/nonexistent/libKcovFollowAgent.so"), CoverageError.Code.invalidArgument),
            (WholeRunRequest(command: command, agentPath: "/bin/sh", bufferWords: 1), .invalidArgument),
        ] {
            do {
                _ = try WholeRunCollector.run(request)
                Issue.record("expected \(expected)")
            } catch {
                #expect(error.code == expected)
            }
        }
    }
}
