#ifndef CKERNELSHIM_H
#define CKERNELSHIM_H

#include <stdint.h>
#include <sys/types.h>

/// ioctl with an integer argument passed by value (glibc's ioctl is variadic, so Swift cannot call it).
int kcs_ioctl_value(int fd, unsigned long request, unsigned long argument);

/// ioctl with an argument passed by pointer.
int kcs_ioctl_pointer(int fd, unsigned long request, void *argument);

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
pid_t kcs_spawn_enabled(const char *path, char *const argv[], char *const envp[], int fd,
                        struct kcs_enable_call enable, uint64_t *counter,
                        int *stage, int *error);

/// Waits for `pid`; returns 0 and the raw wait status, or -1 with errno.
int kcs_wait(pid_t pid, int *status);

#endif
