#ifndef CKERNELSHIM_H
#define CKERNELSHIM_H

#include <stdint.h>
#include <sys/types.h>

/// ioctl with an integer argument passed by value (glibc's ioctl is variadic, so Swift cannot call it).
int kcs_ioctl_value(int fd, unsigned long request, unsigned long argument);

/// ioctl with an argument passed by pointer.
int kcs_ioctl_pointer(int fd, unsigned long request, void *argument);

/// mmap of `length` bytes of `fd` at `offset`, shared and read-write, placed (MAP_FIXED) inside a
/// PROT_NONE reservation one page larger on each side, so a stray access just before or past the
/// buffer faults instead of landing in other memory. Returns the buffer's address, or MAP_FAILED
/// with errno (the reservation's if it failed, else the device mapping's; the reservation is then
/// released).
void *kcs_map_guarded(size_t length, int fd, off_t offset);

/// munmap of a kcs_map_guarded mapping of `length` bytes and its two guard pages; 0 or -1 with errno.
int kcs_unmap_guarded(void *address, size_t length);

/// The calling thread's kernel thread id.
int kcs_gettid(void);

/// A cheap syscall with a small, stable kernel path: read(-1, NULL, 0). Returns its result.
long kcs_probe_syscall(void);

/// Where a spawned child failed before running the command.
enum kcs_spawn_stage {
    KCS_SPAWN_OK = 0,
    KCS_SPAWN_ENABLE = 1,
    KCS_SPAWN_EXEC = 2,
    KCS_SPAWN_FORK = 3,
    KCS_SPAWN_PIPE = 4,
    KCS_SPAWN_STDIO = 5,
};

/// How the child turns coverage on: one ioctl, its argument by value or by pointer to an int.
struct kcs_enable_call {
    unsigned long request;
    unsigned long argument;
    int argument_by_pointer;
};

/// Resets the count word `counter` of a coverage buffer to 0, then vforks: the child enables coverage on the
/// inherited `fd` and execs `path` without touching memory, so the trace starts with the return
/// path of the child's ENABLE, and exec drops its borrowed address space instead of tearing down
/// (and tracing) this process's mappings. Only the ioctl, execve, write and _exit run in the child.
/// Returns the child's pid, or -1 with `*stage` and `*error` saying which step failed (for ENABLE
/// and EXEC, the child's errno; the child is reaped).
/// `stdio[i]`, when not -1, is dup2'd onto descriptor i in the child before its ENABLE.
pid_t kcs_spawn_enabled(const char *path, char *const argv[], char *const envp[], int fd,
                        struct kcs_enable_call enable, uint64_t *counter, const int stdio[3],
                        int *stage, int *error);

/// Waits for `pid`; returns 0 and the raw wait status, or -1 with errno.
int kcs_wait(pid_t pid, int *status);

/// Resets the count word `counter` to 0, then forks without exec. In the child: closes the report
/// pipe's read end, enables coverage on the inherited `fd` with `enable`, and returns 0 (the caller
/// runs its body and _exits); if ENABLE fails the child writes its errno to the report pipe and
/// _exits 127. In the parent: returns the child's pid and the report pipe's read end in
/// `*report_fd` (for kcs_fork_report), or -1 with errno (pipe or fork failed; nothing is left open).
pid_t kcs_fork_enabled(int fd, struct kcs_enable_call enable, uint64_t *counter, int *report_fd);

/// After the child of kcs_fork_enabled was reaped: the errno its ENABLE reported, or 0 when it
/// enabled. Never blocks (a grandchild may still hold the write end). Closes `report_fd`.
int kcs_fork_report(int report_fd);

/// Waits for `pid` at most `timeout_ms` milliseconds (negative: without limit); when the time is
/// up, kills it with SIGKILL and reaps it. Returns 0 with the raw wait status and `*timed_out`,
/// or -1 with errno. Uses a pidfd where the kernel has pidfd_open, else polls every millisecond.
int kcs_wait_timeout(pid_t pid, int timeout_ms, int *status, int *timed_out);

// The kprobe PMU (perf.c).

/// Flags of kcs_perf_kprobe_open.
enum kcs_kprobe_flags {
    KCS_KPROBE_START_DISABLED = 1,
    KCS_KPROBE_INHERIT = 2,
    KCS_KPROBE_ENABLE_ON_EXEC = 4,
};

/// perf_event_open of a counting entry kprobe (kprobe PMU type `pmu_type`) on `function` by name
/// or, when `function` is NULL, at kernel address `address` (the PMU's kprobe_func and kprobe_addr,
/// kernel/trace/trace_event_perf.c, perf_kprobe_init), bound to thread or process `pid` on any CPU,
/// in the group of `group_fd` (-1 for a new group), close-on-exec. Returns the fd, or -1 with errno.
int kcs_perf_kprobe_open(uint32_t pmu_type, const char *function, uint64_t address, pid_t pid, int group_fd, int flags);

/// Reads a counting perf event's 64-bit value; 0, or -1 with errno.
int kcs_read_counter(int fd, uint64_t *value);

/// Forks a child that waits until kcs_release_paused before it execs `path`; returns its pid and
/// the two pipe ends kcs_release_paused takes, or -1 with errno. If the release end is closed
/// unwritten, the child exits 127 without running the command. `stdio[i]`, when not -1, is dup2'd
/// onto descriptor i before the exec (a failure is reported like exec's).
pid_t kcs_spawn_paused(const char *path, char *const argv[], char *const envp[], const int stdio[3], int *release_fd, int *status_fd);

/// Lets a paused child exec; `*exec_errno` is execve's errno in the child, or 0 when it exec'd.
/// Closes both fds. Returns 0.
int kcs_release_paused(int release_fd, int status_fd, int *exec_errno);

#endif
