// The C shims under UndefinedBehaviorSanitizer (Scripts/sanitize.sh undefined; Fuzz/README.md):
// every function of CKernelShim, CBufferProtection and CKcovFollowProtocol on the host, built with
// -fsanitize=undefined -fno-sanitize-recover=all, so any undefined behaviour aborts the run.
// Each call's result is checked too, on calls whose outcome does not need a kcov device (an
// enable ioctl that succeeds on any fd, FIOCLEX, stands in for KCOV_ENABLE).
#define _GNU_SOURCE
#include "CBufferProtection.h"
#include "CKcovFollowProtocol.h"
#include "CKernelShim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static int failures;

#define CHECK(condition)                                                                    \
    do {                                                                                    \
        if (!(condition)) {                                                                 \
            fprintf(stderr, "shims.c:%d: FAILED: %s (errno %d)\n", __LINE__, #condition, errno); \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static void kernel_shim(void) {
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(null >= 0);
    CHECK(kcs_ioctl_value(null, 0, 0) == -1 && errno == ENOTTY);
    int value = 0;
    CHECK(kcs_ioctl_pointer(null, FIONREAD, &value) == -1);
    CHECK(kcs_gettid() == getpid());
    CHECK(kcs_probe_syscall() == -1);

    // Guarded mappings of a shared file: whole pages, an odd length, and lengths that cannot fit.
    int file = memfd_create("shims-ubsan", MFD_CLOEXEC);
    CHECK(file >= 0 && ftruncate(file, 5 * 4096) == 0);
    size_t lengths[] = {4096, 3 * 4096, 5000, 1};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        unsigned char *buffer = kcs_map_guarded(lengths[i], file, 0);
        CHECK(buffer != MAP_FAILED);
        if (buffer == MAP_FAILED) continue;
        buffer[0] = 1;
        buffer[lengths[i] - 1] = 2;
        CHECK(kcs_unmap_guarded(buffer, lengths[i]) == 0);
    }
    CHECK(kcs_map_guarded(SIZE_MAX, file, 0) == MAP_FAILED && errno == ENOMEM);
    CHECK(kcs_map_guarded(SIZE_MAX - 4096, file, 0) == MAP_FAILED);
    CHECK(kcs_unmap_guarded(NULL, 4096) == -1 && errno == EINVAL);
    CHECK(kcs_unmap_guarded((void *)4096, SIZE_MAX) == -1 && errno == EINVAL);

    // Spawn with an enable that works, one that fails, and an exec that fails; with stdio.
    uint64_t counter = 7;
    int stage = -1, error = -1, status = 0;
    char *true_argv[] = {"/bin/true", NULL};
    int stdio[3] = {null, null, -1};
    struct kcs_enable_call enable = {.request = FIOCLEX, .argument = 0, .argument_by_pointer = 0};
    pid_t pid = kcs_spawn_enabled("/bin/true", true_argv, environ, null, enable, &counter, stdio, &stage, &error);
    CHECK(pid > 0 && stage == KCS_SPAWN_OK);
    if (pid > 0) CHECK(kcs_wait(pid, &status) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct kcs_enable_call refused = {.request = 0, .argument = 0, .argument_by_pointer = 1};
    pid = kcs_spawn_enabled("/bin/true", true_argv, environ, null, refused, &counter, stdio, &stage, &error);
    CHECK(pid == -1 && stage == KCS_SPAWN_ENABLE && error == ENOTTY);
    pid = kcs_spawn_enabled("/nonexistent", true_argv, environ, null, enable, &counter, stdio, &stage, &error);
    CHECK(pid == -1 && stage == KCS_SPAWN_EXEC && error == ENOENT);
    int closed[3] = {1000, -1, -1};
    pid = kcs_spawn_enabled("/bin/true", true_argv, environ, null, enable, &counter, closed, &stage, &error);
    CHECK(pid == -1 && stage == KCS_SPAWN_STDIO);

    // A wait that times out kills the child; one that does not returns its status.
    char *sleep_argv[] = {"/bin/sleep", "5", NULL};
    pid = kcs_spawn_enabled("/bin/sleep", sleep_argv, environ, null, enable, &counter, stdio, &stage, &error);
    CHECK(pid > 0);
    int timed_out = -1;
    if (pid > 0) CHECK(kcs_wait_timeout(pid, 100, &status, &timed_out) == 0 && timed_out == 1 && WIFSIGNALED(status));
    pid = kcs_spawn_enabled("/bin/true", true_argv, environ, null, enable, &counter, stdio, &stage, &error);
    if (pid > 0) CHECK(kcs_wait_timeout(pid, 10000, &status, &timed_out) == 0 && timed_out == 0 && WIFEXITED(status));

    // Fork with an enable that works and one that fails.
    int report = -1;
    pid = kcs_fork_enabled(null, enable, &counter, &report);
    if (pid == 0) _exit(3);
    CHECK(pid > 0 && counter == 0);
    if (pid > 0) {
        CHECK(kcs_wait(pid, &status) == 0 && WEXITSTATUS(status) == 3);
        CHECK(kcs_fork_report(report) == 0);
    }
    pid = kcs_fork_enabled(null, refused, &counter, &report);
    if (pid == 0) _exit(3);
    if (pid > 0) {
        CHECK(kcs_wait(pid, &status) == 0 && WEXITSTATUS(status) == 127);
        CHECK(kcs_fork_report(report) == ENOTTY);
    }

    // Paused children: released, released into a failing exec, abandoned.
    int release = -1, status_fd = -1, exec_errno = -1;
    pid = kcs_spawn_paused("/bin/true", true_argv, environ, stdio, &release, &status_fd);
    CHECK(pid > 0);
    if (pid > 0) {
        CHECK(kcs_release_paused(release, status_fd, &exec_errno) == 0 && exec_errno == 0);
        CHECK(kcs_wait(pid, &status) == 0 && WEXITSTATUS(status) == 0);
    }
    pid = kcs_spawn_paused("/nonexistent", true_argv, environ, stdio, &release, &status_fd);
    if (pid > 0) {
        CHECK(kcs_release_paused(release, status_fd, &exec_errno) == 0 && exec_errno == ENOENT);
        kcs_wait(pid, &status);
    }
    pid = kcs_spawn_paused("/bin/true", true_argv, environ, stdio, &release, &status_fd);
    if (pid > 0) {
        close(release);
        close(status_fd);
        CHECK(kcs_wait(pid, &status) == 0 && WEXITSTATUS(status) == 127);
    }

    // perf: a PMU type no kernel has; a counter read from a pipe holding one value, and an empty one.
    CHECK(kcs_perf_kprobe_open(0xfffffff0u, "ksys_read", 0, -1, -1, KCS_KPROBE_START_DISABLED | KCS_KPROBE_INHERIT) == -1);
    int pipe_fds[2];
    CHECK(pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0);
    uint64_t written = 0x1122334455667788ull, read_value = 0;
    CHECK(write(pipe_fds[1], &written, sizeof written) == sizeof written);
    CHECK(kcs_read_counter(pipe_fds[0], &read_value) == 0 && read_value == written);
    CHECK(kcs_read_counter(pipe_fds[0], &read_value) == -1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    close(file);
    close(null);
}

static void buffer_protection(void) {
    int key = kbp_allocate_key();
    if (key < 0) {
        printf("buffer protection: no protection keys here (errno %d); refusals checked only\n", errno);
        CHECK(kbp_set_writable(-1, 0) == -1 || errno != 0);
        return;
    }
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED);
    CHECK(kbp_assign_key(page, 4096, key) == 0);
    CHECK(kbp_set_writable(key, 0) == 0);
    CHECK(page[0] == 0);
    CHECK(kbp_set_writable(key, 1) == 0);
    page[0] = 1;
    CHECK(kbp_free_key(key) == 0);
    munmap(page, 4096);
}

static void follow_protocol(void) {
    int control = kfp_control_file();
    CHECK(control >= 0);
    struct stat info;
    CHECK(fstat(control, &info) == 0 && info.st_size == KFP_CONTROL_BYTES);
    char name[64];
    snprintf(name, sizeof name, "kcov-shims-ubsan-%d", getpid());
    int listener = kfp_listen(name);
    CHECK(listener >= 0);
    int client = kfp_connect(name);
    CHECK(client >= 0);
    int server = kfp_accept(listener);
    CHECK(server >= 0);
    struct kfp_message sent = {.kind = 3, .pid = 10, .tid = 11, .ppid = 1, .error = 0};
    memset(sent.text, 'x', sizeof sent.text - 1);
    sent.text[sizeof sent.text - 1] = 0;
    CHECK(kfp_send(client, &sent, control) == 0);
    CHECK(kfp_send(client, &sent, -1) == 0);
    struct kfp_message received;
    int fd = -2;
    CHECK(kfp_receive(server, &received, &fd) == 1 && fd >= 0 && memcmp(&received, &sent, sizeof sent) == 0);
    if (fd >= 0) close(fd);
    CHECK(kfp_receive(server, &received, &fd) == 1 && fd == -1);
    CHECK(kfp_receive(server, &received, &fd) == -1 && errno == EAGAIN);
    close(client);
    CHECK(kfp_receive(server, &received, &fd) == 0);
    CHECK(kfp_connect("kcov-shims-ubsan-nobody-listens") == -1);
    CHECK(kfp_accept(listener) == -1 && errno == EAGAIN);
    close(server);
    close(listener);
    close(control);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    kernel_shim();
    buffer_protection();
    follow_protocol();
    if (failures) {
        fprintf(stderr, "shims: %d checks FAILED\n", failures);
        return 1;
    }
    printf("shims: every check passed, no undefined behaviour\n");
    return 0;
}
