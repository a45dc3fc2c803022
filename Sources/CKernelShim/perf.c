// The kprobe PMU through perf_event_open, and a child that waits to be released before exec (so
// counters can be attached to its pid with enable_on_exec). C because perf_event_open has no libc
// wrapper and perf_event_attr's bitfields are not reachable from Swift.
#define _GNU_SOURCE
#include "CKernelShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int kcs_perf_kprobe_open(uint32_t pmu_type, const char *function, uint64_t address, pid_t pid, int group_fd, int flags) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = pmu_type;
    attr.size = sizeof attr;
    attr.config = 0; // bit 0 would make it a return probe
    // By name: kprobe_func and an offset; by address: kprobe_func 0 and kprobe_addr (the same
    // union as probe_offset).
    attr.kprobe_func = (uint64_t)(uintptr_t)function;
    if (function) {
        attr.probe_offset = 0;
    } else {
        attr.kprobe_addr = address;
    }
    attr.disabled = (flags & KCS_KPROBE_START_DISABLED) ? 1 : 0;
    attr.inherit = (flags & KCS_KPROBE_INHERIT) ? 1 : 0;
    attr.enable_on_exec = (flags & KCS_KPROBE_ENABLE_ON_EXEC) ? 1 : 0;
    return (int)syscall(SYS_perf_event_open, &attr, pid, -1, group_fd, PERF_FLAG_FD_CLOEXEC);
}

int kcs_read_counter(int fd, uint64_t *value) {
    ssize_t n;
    do {
        n = read(fd, value, sizeof *value);
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof *value) return 0;
    if (n >= 0) errno = EIO;
    return -1;
}

pid_t kcs_spawn_paused(const char *path, char *const argv[], char *const envp[], const int stdio[3], int *release_fd, int *status_fd) {
    int go[2], report[2];
    if (pipe2(go, O_CLOEXEC) != 0) return -1;
    if (pipe2(report, O_CLOEXEC) != 0) {
        int saved = errno;
        close(go[0]);
        close(go[1]);
        errno = saved;
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(go[0]); close(go[1]); close(report[0]); close(report[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        // The child's own copy of the release end would keep its read from ever seeing the end of
        // the pipe: an abandoned child must exit, not wait forever.
        close(go[1]);
        close(report[0]);
        char byte;
        ssize_t n;
        do {
            n = read(go[0], &byte, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(127); // the parent gave up: never run the command untraced
        for (int target = 0; target < 3; target++) {
            if (stdio[target] >= 0 && dup2(stdio[target], target) < 0) {
                int code = errno;
                ssize_t ignored = write(report[1], &code, sizeof code);
                (void)ignored;
                _exit(127);
            }
        }
        execve(path, argv, envp);
        int code = errno;
        ssize_t ignored = write(report[1], &code, sizeof code);
        (void)ignored;
        _exit(127);
    }
    close(go[0]);
    close(report[1]);
    *release_fd = go[1];
    *status_fd = report[0];
    return pid;
}

int kcs_release_paused(int release_fd, int status_fd, int *exec_errno) {
    char byte = 'x';
    ssize_t n;
    *exec_errno = 0;
    do {
        n = write(release_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    close(release_fd);
    int code = 0;
    do {
        n = read(status_fd, &code, sizeof code);
    } while (n < 0 && errno == EINTR);
    close(status_fd);
    if (n == (ssize_t)sizeof code) *exec_errno = code;
    return 0;
}
