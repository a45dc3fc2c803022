#define _GNU_SOURCE
#include "CKernelShim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int kcs_ioctl_value(int fd, unsigned long request, unsigned long argument) {
    return ioctl(fd, request, argument);
}

int kcs_ioctl_pointer(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}

/* The reservation around a `length`-byte buffer, or 0 when the length cannot be reserved. */
static size_t guarded_span(size_t length, size_t page) {
    if (length > SIZE_MAX - 3 * page) return 0;
    return (length + page - 1) / page * page + 2 * page;
}

void *kcs_map_guarded(size_t length, int fd, off_t offset) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = guarded_span(length, page);
    if (span == 0) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    char *reservation = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reservation == MAP_FAILED) return MAP_FAILED;
    void *buffer = mmap(reservation + page, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, offset);
    if (buffer == MAP_FAILED) {
        int error = errno;
        munmap(reservation, span);
        errno = error;
    }
    return buffer;
}

int kcs_unmap_guarded(void *address, size_t length) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = guarded_span(length, page);
    if (span == 0 || (uintptr_t)address < page) {
        errno = EINVAL;
        return -1;
    }
    return munmap((char *)address - page, span);
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
                        struct kcs_enable_call enable, uint64_t *counter, const int stdio[3],
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
        for (int target = 0; target < 3; target++) {
            if (stdio[target] >= 0 && dup2(stdio[target], target) < 0) report_and_exit(report[1], KCS_SPAWN_STDIO);
        }
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

pid_t kcs_fork_enabled(int fd, struct kcs_enable_call enable, uint64_t *counter, int *report_fd) {
    int report[2];
    if (pipe2(report, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
    int mode = (int)enable.argument;
    pid_t pid = fork();
    if (pid < 0) {
        int fork_error = errno;
        close(report[0]);
        close(report[1]);
        errno = fork_error;
        return -1;
    }
    if (pid == 0) {
        close(report[0]);
        int result = enable.argument_by_pointer
            ? ioctl(fd, enable.request, &mode)
            : ioctl(fd, enable.request, enable.argument);
        if (result != 0) {
            int enable_error = errno;
            ssize_t ignored = write(report[1], &enable_error, sizeof enable_error);
            (void)ignored;
            _exit(127);
        }
        return 0;
    }
    close(report[1]);
    *report_fd = report[0];
    return pid;
}

int kcs_fork_report(int report_fd) {
    int enable_error = 0;
    ssize_t got;
    do {
        got = read(report_fd, &enable_error, sizeof enable_error);
    } while (got < 0 && errno == EINTR);
    close(report_fd);
    return got == (ssize_t)sizeof enable_error ? enable_error : 0;
}

static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int kcs_wait_timeout(pid_t pid, int timeout_ms, int *status, int *timed_out) {
    *timed_out = 0;
    if (timeout_ms < 0) return kcs_wait(pid, status);
    long long deadline = now_ms() + timeout_ms;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        pid_t done = waitpid(pid, status, WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) {
            int wait_error = errno;
            if (pidfd >= 0) close(pidfd);
            errno = wait_error;
            return -1;
        }
        long long left = deadline - now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            if (pidfd >= 0) close(pidfd);
            if (kcs_wait(pid, status) != 0) return -1;
            /* It may have exited on its own just before the kill. */
            *timed_out = WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL;
            return 0;
        }
        if (pidfd >= 0) {
            struct pollfd exited = {.fd = pidfd, .events = POLLIN};
            poll(&exited, 1, left > 1000 ? 1000 : (int)left);
        } else {
            struct timespec tick = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&tick, NULL);
        }
    }
    if (pidfd >= 0) close(pidfd);
    return 0;
}
