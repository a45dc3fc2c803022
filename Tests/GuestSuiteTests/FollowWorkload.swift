import Foundation
import TestSupport

/// The whole-run test program (Docs/follow.md): 16 threads each making a distinct syscall, a
/// process tree 3 levels deep, an execve chain, a child killed with SIGKILL mid-run, a child that
/// ends with `_exit(7)`, and a static executable exec'd by a child. It logs what it did on
/// standard error (`follow: thread 3 tid 123 uname`), which the test checks the records against.
struct FollowWorkload: Sendable {
    /// The 16 syscalls, one per thread; each has its own `__x64_sys_<name>` entry in the kernel.
    static let syscalls = [
        "getppid", "getuid", "getgid", "geteuid", "getegid", "umask", "getresuid", "getpriority",
        "uname", "sysinfo", "times", "getrlimit", "getcwd", "getitimer", "getsid", "getpgid",
    ]

    /// Where a syscall's own kernel code is, by function name, when not in `…sys_<name>`: uname(2)
    /// is `newuname` on x86-64. (No sched_* syscalls: kernel/sched is built without kcov instrumentation.)
    static let kernelToken = ["uname": "sys_newuname"]

    static let source = """
        #define _GNU_SOURCE
        #include <pthread.h>
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/resource.h>
        #include <sys/syscall.h>
        #include <sys/time.h>
        #include <sys/times.h>
        #include <sys/utsname.h>
        #include <sys/wait.h>
        #include <time.h>
        #include <unistd.h>

        static const char *names[16] = {\(syscalls.map { "\"\($0)\"" }.joined(separator: ", "))};

        static void *worker(void *argument) {
            long index = (long)argument;
            char buffer[512];
            struct utsname uts;
            struct tms tms; struct rlimit limit; struct itimerval timer;
            switch (index) {
            case 0: syscall(SYS_getppid); break;
            case 1: syscall(SYS_getuid); break;
            case 2: syscall(SYS_getgid); break;
            case 3: syscall(SYS_geteuid); break;
            case 4: syscall(SYS_getegid); break;
            case 5: syscall(SYS_umask, 022); break;
            case 6: { uid_t r, e, s; syscall(SYS_getresuid, &r, &e, &s); break; }
            case 7: syscall(SYS_getpriority, PRIO_PROCESS, 0); break;
            case 8: syscall(SYS_uname, &uts); break;
            case 9: syscall(SYS_sysinfo, buffer); break;
            case 10: syscall(SYS_times, &tms); break;
            case 11: syscall(SYS_getrlimit, RLIMIT_NOFILE, &limit); break;
            case 12: syscall(SYS_getcwd, buffer, sizeof buffer); break;
            case 13: syscall(SYS_getitimer, ITIMER_REAL, &timer); break;
            case 14: syscall(SYS_getsid, 0); break;
            case 15: syscall(SYS_getpgid, 0); break;
            }
            fprintf(stderr, "follow: thread %ld tid %ld %s\\n", index, (long)syscall(SYS_gettid), names[index]);
            return NULL;
        }

        static void tree(int depth) {
            fprintf(stderr, "follow: tree %d pid %d parent %d\\n", depth, getpid(), getppid());
            if (depth == 3) return;
            pid_t child = fork();
            if (child == 0) { tree(depth + 1); exit(0); }
            waitpid(child, NULL, 0);
        }

        int main(int argc, char **argv) {
            if (argc >= 3 && strcmp(argv[1], "chain") == 0) {
                int left = atoi(argv[2]);
                fprintf(stderr, "follow: chain %d pid %d\\n", left, getpid());
                if (left == 0) { execl("/bin/true", "true", (char *)NULL); return 1; }
                char next[16];
                snprintf(next, sizeof next, "%d", left - 1);
                execl("/proc/self/exe", argv[0], "chain", next, (char *)NULL);
                return 1;
            }
            const char *static_program = argc >= 2 ? argv[1] : NULL;
            pthread_t threads[16];
            for (long index = 0; index < 16; index++) pthread_create(&threads[index], NULL, worker, (void *)index);
            for (int index = 0; index < 16; index++) pthread_join(threads[index], NULL);
            tree(0);
            pid_t chain = fork();
            if (chain == 0) { execl("/proc/self/exe", argv[0], "chain", "2", (char *)NULL); _exit(1); }
            waitpid(chain, NULL, 0);
            // The victim says when it runs its loop, so the kill lands mid-run however slow the setup.
            int ready[2];
            if (pipe(ready) != 0) return 1;
            pid_t victim = fork();
            if (victim == 0) {
                fprintf(stderr, "follow: victim pid %d\\n", getpid());
                for (long round = 0;; round++) {
                    syscall(SYS_getppid);
                    if (round == 1000) { char byte = 1; if (write(ready[1], &byte, 1) != 1) _exit(1); }
                }
            }
            char byte;
            if (read(ready[0], &byte, 1) != 1) return 1;
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
            kill(victim, SIGKILL);
            waitpid(victim, NULL, 0);
            pid_t quitter = fork();
            if (quitter == 0) { fprintf(stderr, "follow: quitter pid %d\\n", getpid()); _exit(7); }
            waitpid(quitter, NULL, 0);
            if (static_program) {
                pid_t child = fork();
                if (child == 0) { fprintf(stderr, "follow: static pid %d\\n", getpid()); execl(static_program, static_program, (char *)NULL); _exit(1); }
                waitpid(child, NULL, 0);
            }
            return 0;
        }

        """

    /// The static executable: one syscall nothing else here makes, `getcpu`.
    static let staticSource = """
        #define _GNU_SOURCE
        #include <sys/syscall.h>
        #include <unistd.h>
        int main(void) { unsigned cpu, node; syscall(SYS_getcpu, &cpu, &node, NULL); return 0; }

        """

    var program: String
    var staticProgram: String

    /// Compiled once into a directory under /tmp, which the guest sees through the shared root.
    static func build() throws -> FollowWorkload {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("follow-workload-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try source.write(toFile: directory + "/workload.c", atomically: true, encoding: .utf8)
        try staticSource.write(toFile: directory + "/static.c", atomically: true, encoding: .utf8)
        _ = try runTool("/usr/bin/gcc", ["-O1", "-pthread", "-o", directory + "/workload", directory + "/workload.c"])
        _ = try runTool("/usr/bin/gcc", ["-O1", "-static", "-o", directory + "/static-getcpu", directory + "/static.c"])
        return FollowWorkload(program: directory + "/workload", staticProgram: directory + "/static-getcpu")
    }
}
