#define _GNU_SOURCE
#include "CKernelShim.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int kcs_ioctl_value(int fd, unsigned long request, unsigned long argument) {
    return ioctl(fd, request, argument);
}

int kcs_ioctl_pointer(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

int kcs_gettid(void) {
    return (int)syscall(SYS_gettid);
}

long kcs_probe_syscall(void) {
    return (long)syscall(SYS_read, -1, (void *)0, (size_t)0);
}

static void report_and_exit(int fd, int stage) {
    int message[2] = {stage, errno};
    ssize_t ignored = write(fd, message, sizeof message);
    (void)ignored;
    _exit(127);
}

pid_t kcs_spawn_enabled(const char *path, char *const argv[], char *const envp[], int fd,
                        struct kcs_enable_call enable, uint64_t *counter,
                        int *stage, int *error) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *stage = KCS_SPAWN_PIPE;
        *error = errno;
        return -1;
    }
    __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
    /* vfork: the child borrows this address space until it execs, so exec only drops a
       reference to it instead of tearing down (and tracing) every mapping of this process. */
    int mode = (int)enable.argument;
    pid_t pid = vfork();
    int fork_error = errno;
    if (pid < 0) {
        *stage = KCS_SPAWN_FORK;
        *error = fork_error;
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        int result = enable.argument_by_pointer
            ? ioctl(fd, enable.request, &mode)
            : ioctl(fd, enable.request, enable.argument);
        if (result != 0) report_and_exit(report[1], KCS_SPAWN_ENABLE);
        execve(path, argv, envp);
        report_and_exit(report[1], KCS_SPAWN_EXEC);
    }
    close(report[1]);
    int message[2] = {0, 0};
    ssize_t got;
    do {
        got = read(report[0], message, sizeof message);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof message) {
        int status;
        kcs_wait(pid, &status);
        *stage = message[0];
        *error = message[1];
        return -1;
    }
    *stage = KCS_SPAWN_OK;
    *error = 0;
    return pid;
}

int kcs_wait(pid_t pid, int *status) {
    for (;;) {
        if (waitpid(pid, status, 0) >= 0) return 0;
        if (errno != EINTR) return -1;
    }
}
