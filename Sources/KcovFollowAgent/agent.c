// libKcovFollowAgent.so: loaded into every process of a `kcovctl trace --follow` run with
// LD_PRELOAD, it gives each task a kcov of its own and hands every fd to the collector.
// The mechanism, the kernel facts it rests on and what it cannot reach: Docs/follow.md.
//
// Rule of this file: an agent syscall made while the calling task is enabled either happens
// before its ENABLE, after its DISABLE, or between reading the count word and writing it back
// (Docs/follow.md#perturbation); the only exceptions are the two mmap calls of an exec'd image.
#define _GNU_SOURCE
#include "CKcovFollowProtocol.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

// Linux kcov requests (Docs/kcov-linux.md#ioctls).
#define KF_INIT_TRACE _IOR('c', 1, unsigned long)
#define KF_ENABLE _IO('c', 100)
#define KF_DISABLE _IO('c', 101)

/// One traced task: its kcov fd and mapping.
struct kf_task {
    int fd;
    int tid;
    uint64_t *area;
};

/// Every kcov fd this process holds, so a fork child can close the parent's.
#define KF_MAX_TASKS 4096
static struct kf_task *tasks[KF_MAX_TASKS];

static int active;
static char socket_name[108];
static size_t words;
static unsigned long trace_mode;
static int socket_fd = -1;
static int control_fd = -1;
static struct kfp_control *control;
static pthread_key_t task_key;
static struct kf_task main_task = {.fd = -1};
static __thread struct kf_task *self;

static uint64_t count_of(const struct kf_task *task) { return __atomic_load_n(&task->area[0], __ATOMIC_RELAXED); }
static void set_count(const struct kf_task *task, uint64_t count) { __atomic_store_n(&task->area[0], count, __ATOMIC_RELAXED); }

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

static void remember(struct kf_task *task) {
    for (int index = 0; index < KF_MAX_TASKS; index++) {
        struct kf_task *expected = NULL;
        if (__atomic_compare_exchange_n(&tasks[index], &expected, task, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
    }
}

static void forget(struct kf_task *task) {
    for (int index = 0; index < KF_MAX_TASKS; index++) {
        struct kf_task *expected = task;
        if (__atomic_compare_exchange_n(&tasks[index], &expected, NULL, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
    }
}

static void message(uint32_t kind, int tid, int error, const char *text, int fd) {
    struct kfp_message out;
    memset(&out, 0, sizeof out);
    out.kind = kind;
    out.pid = control ? control->pid : 0;
    out.tid = tid;
    out.ppid = (int32_t)getppid();
    out.error = error;
    if (text) strncpy(out.text, text, sizeof out.text - 1);
    if (socket_fd >= 0) kfp_send(socket_fd, &out, fd);
}

static void add_event(int tid, int kind, uint64_t position, const char *path) {
    if (!control) return;
    uint32_t index = __atomic_fetch_add(&control->event_count, 1, __ATOMIC_SEQ_CST);
    if (index >= KFP_CONTROL_EVENTS) return;
    struct kfp_event *event = &control->events[index];
    event->tid = tid;
    event->position = position;
    if (path) strncpy(event->path, path, sizeof event->path - 1);
    __atomic_store_n(&event->kind, kind, __ATOMIC_RELEASE);
}

static const char *executable_name(void);

/// Opens, sizes and maps a kcov for the calling task, hands the fd to the collector, enables it
/// and drops ENABLE's return path. The task has no kcov before this, so nothing here is traced.
static int start_task(struct kf_task *task) {
    task->tid = (int)syscall(SYS_gettid);
    task->fd = open("/sys/kernel/debug/kcov", O_RDWR | O_CLOEXEC);
    if (task->fd < 0) {
        message(KFP_FAILED, task->tid, errno, "open /sys/kernel/debug/kcov", -1);
        return -1;
    }
    const char *step = "KCOV_INIT_TRACE";
    if (ioctl(task->fd, KF_INIT_TRACE, (unsigned long)words) == 0) {
        step = "mmap";
        void *area = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, task->fd, 0);
        if (area != MAP_FAILED) {
            task->area = area;
            // The image is named here: the collector may read this after the task's exec loaded the next one.
            message(KFP_TASK, task->tid, 0, executable_name(), task->fd);
            step = "KCOV_ENABLE";
            if (ioctl(task->fd, KF_ENABLE, trace_mode) == 0) {
                set_count(task, 0);
                remember(task);
                self = task;
                return 0;
            }
            int error = errno;
            munmap(area, words * 8);
            task->area = NULL;
            errno = error;
        }
    }
    int error = errno;
    close(task->fd);
    task->fd = -1;
    message(KFP_FAILED, task->tid, error, step, -1);
    return -1;
}

/// A thread's end (thread-specific-data destructor): disable, restore the count (dropping
/// DISABLE's entry path), tell the collector the buffer is final, release.
static void end_task(void *pointer) {
    struct kf_task *task = pointer;
    if (!task) return;
    if (task->area) {
        uint64_t count = count_of(task);
        ioctl(task->fd, KF_DISABLE, 0);
        set_count(task, count);
        message(KFP_DONE, task->tid, 0, NULL, -1);
        munmap(task->area, words * 8);
    }
    forget(task);
    close(task->fd);
    if (self == task) self = NULL;
    free(task);
}

static void write_state(void) {
    char state[32];
    snprintf(state, sizeof state, "%010d:%010d", control_fd, socket_fd);
    char *existing = getenv(KFP_ENV_STATE);
    if (existing && strlen(existing) == strlen(state)) memcpy(existing, state, strlen(state));
    else setenv(KFP_ENV_STATE, state, 1);
}

/// `fd` moved to number `wanted` (when that is free to take, >= 0 and another number).
static int move_to(int fd, int wanted) {
    if (fd < 0 || wanted < 0 || wanted == fd) return fd;
    if (dup3(fd, wanted, 0) < 0) return fd;
    close(fd);
    return wanted;
}

/// A new process: connect, create and send the control page, start the calling task. The
/// socket and page take the numbers `wanted_socket` and `wanted_control` when given (the numbers
/// in KCOVFOLLOW_STATE, which shells copy at startup and pass on unchanged).
static void start_process(const char *executable, int wanted_control, int wanted_socket) {
    socket_fd = move_to(kfp_connect(socket_name), wanted_socket);
    if (socket_fd < 0) return;
    control_fd = move_to(kfp_control_file(), wanted_control);
    if (control_fd >= 0) {
        void *page = mmap(NULL, KFP_CONTROL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, control_fd, 0);
        if (page != MAP_FAILED) control = page;
    }
    if (!control) {
        struct kfp_message out = {.kind = KFP_FAILED, .pid = (int32_t)getpid(), .tid = (int32_t)getpid(), .error = errno};
        strcpy(out.text, "control page (memfd_create, ftruncate, mmap)");
        if (control_fd >= 0) close(control_fd);
        control_fd = -1;
        kfp_send(socket_fd, &out, -1);
        return;
    }
    control->magic = KFP_CONTROL_MAGIC;
    control->version = KFP_CONTROL_VERSION;
    control->pid = (int32_t)getpid();
    control->exec_fd = -1;
    message(KFP_HELLO, control->pid, 0, executable, control_fd);
    write_state();
    main_task = (struct kf_task){.fd = -1};
    start_task(&main_task);
}

static const char *executable_name(void) {
    const char *name = (const char *)getauxval(AT_EXECFN);
    return name ? name : "";
}

/// After an exec of a traced task: map the control page and the kept kcov fd; two mmap calls
/// are traced before the count can be read (the event's position). Returns 1 when this image
/// continues a traced process; 0 when the state was another process's (it is closed and its
/// numbers are free); -1 when the state names no control page.
static int continue_process(const char *state) {
    int page_fd = -1, old_socket = -1;
    if (sscanf(state, "%d:%d", &page_fd, &old_socket) != 2) return -1;
    struct kfp_control *page = mmap(NULL, KFP_CONTROL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
    if (page == MAP_FAILED) return -1;
    struct kf_task kept = {.fd = -1};
    if (page->magic == KFP_CONTROL_MAGIC && page->exec_tid != 0 && page->exec_fd >= 0) {
        void *area = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, page->exec_fd, 0);
        if (area != MAP_FAILED) kept = (struct kf_task){.fd = page->exec_fd, .area = area};
    }
    uint64_t position = kept.area ? count_of(&kept) : UINT64_MAX;
    int pid = (int)getpid();
    // The command the collector started: the first image to load claims the page.
    int32_t unclaimed = KFP_PID_UNCLAIMED;
    if (page->magic == KFP_CONTROL_MAGIC) __atomic_compare_exchange_n(&page->pid, &unclaimed, pid, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    if (page->magic != KFP_CONTROL_MAGIC || page->pid != pid) {
        // Inherited without being this process (a posix_spawn child): not ours to keep.
        if (kept.area) {
            munmap(kept.area, words * 8);
            if (kept.fd > 2) close(kept.fd);
        }
        munmap(page, KFP_CONTROL_BYTES);
        if (page_fd > 2) close(page_fd);
        if (old_socket > 2 && old_socket != page_fd) close(old_socket);
        return 0;
    }
    control = page;
    control_fd = page_fd;
    socket_fd = old_socket;
    if (kept.area) {
        main_task = kept;
        main_task.tid = pid;
        fcntl(main_task.fd, F_SETFD, FD_CLOEXEC);
        remember(&main_task);
        self = &main_task;
    }
    add_event(pid, KFP_EVENT_LOADED, position, executable_name());
    control->exec_tid = 0;
    control->exec_fd = -1;
    if (kept.area) set_count(&main_task, position);
    return 1;
}

static void record_exit(int status, void *unused) {
    (void)unused;
    if (!control || control->exit_kind != KFP_EXIT_NONE) return;
    control->exit_status = status;
    control->exit_kind = KFP_EXIT_EXIT;
}

__attribute__((constructor)) static void agent_start(void) {
    const char *name = getenv(KFP_ENV_SOCKET);
    const char *size = getenv(KFP_ENV_WORDS);
    if (!name || !*name || !size) return;
    char *end;
    unsigned long parsed = strtoul(size, &end, 10);
    if (*end || parsed < 2 || parsed > (unsigned long)INT_MAX / 8) return;
    words = parsed;
    const char *mode = getenv(KFP_ENV_MODE);
    trace_mode = mode && strcmp(mode, "1") == 0 ? 1 : 0;
    strncpy(socket_name, name, sizeof socket_name - 1);
    if (pthread_key_create(&task_key, end_task) != 0) return;
    active = 1;
    on_exit(record_exit, NULL);
    const char *state = getenv(KFP_ENV_STATE);
    int wanted_control = -1, wanted_socket = -1;
    int continued = state ? continue_process(state) : -1;
    if (continued == 1) return;
    if (continued == 0) sscanf(state, "%d:%d", &wanted_control, &wanted_socket);
    start_process(executable_name(), wanted_control, wanted_socket);
}

// MARK: threads

struct kf_start {
    void *(*routine)(void *);
    void *argument;
};

static void *thread_start(void *pointer) {
    struct kf_start start = *(struct kf_start *)pointer;
    free(pointer);
    struct kf_task *task = calloc(1, sizeof *task);
    if (task) {
        if (start_task(task) == 0) pthread_setspecific(task_key, task);
        else free(task);
    }
    return start.routine(start.argument);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attributes, void *(*routine)(void *), void *argument) {
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) real = next("pthread_create");
    if (!active) return real(thread, attributes, routine, argument);
    struct kf_start *start = malloc(sizeof *start);
    if (!start) return EAGAIN;
    start->routine = routine;
    start->argument = argument;
    int result = real(thread, attributes, thread_start, start);
    if (result != 0) free(start);
    return result;
}

// MARK: processes

/// In a fork child: drop the parent's kcov fds, mappings, control page and connection (they
/// would keep its buffers alive), then start as a new process.
static void start_child(void) {
    for (int index = 0; index < KF_MAX_TASKS; index++) {
        struct kf_task *task = __atomic_exchange_n(&tasks[index], NULL, __ATOMIC_SEQ_CST);
        if (!task) continue;
        if (task->area) munmap(task->area, words * 8);
        close(task->fd);
        task->area = NULL;
        task->fd = -1;
    }
    self = NULL;
    if (control) munmap(control, KFP_CONTROL_BYTES);
    control = NULL;
    int wanted_control = control_fd, wanted_socket = socket_fd;
    if (control_fd >= 0) close(control_fd);
    if (socket_fd >= 0) close(socket_fd);
    control_fd = socket_fd = -1;
    start_process(executable_name(), wanted_control, wanted_socket);
}

pid_t fork(void) {
    static pid_t (*real)(void);
    if (!real) real = next("fork");
    pid_t pid = real();
    if (pid == 0 && active) start_child();
    return pid;
}

/// vfork as fork: the child may then run the agent's setup without writing the parent's memory.
pid_t vfork(void) { return fork(); }

void _exit(int status) {
    static void (*real)(int) __attribute__((noreturn));
    if (!real) real = next("_exit");
    if (control && control->exit_kind == KFP_EXIT_NONE) {
        control->exit_status = status;
        control->exit_kind = KFP_EXIT_UNDERSCORE;
    }
    real(status);
    __builtin_unreachable();
}

void _Exit(int status) { _exit(status); }

// MARK: exec

/// Before an exec: keep this task's kcov fd open across it and say where its image ends.
static void before_exec(const char *path) {
    struct kf_task *task = self;
    if (!task || !task->area || !control) return;
    uint64_t count = count_of(task);
    fcntl(task->fd, F_SETFD, 0);
    control->exec_fd = task->fd;
    control->exec_tid = task->tid;
    // An absolute path, so the collector can look at the file after this process is gone (a
    // bare name stays as it is: the collector searches PATH).
    char resolved[PATH_MAX];
    const char *recorded = strchr(path, '/') && realpath(path, resolved) ? resolved : path;
    add_event(task->tid, KFP_EVENT_EXECING, count, recorded);
    set_count(task, count);
}

/// The exec failed: the image goes on; close-on-exec again.
static void after_exec(void) {
    struct kf_task *task = self;
    if (!task || !task->area || !control) return;
    int error = errno;
    uint64_t count = count_of(task);
    fcntl(task->fd, F_SETFD, FD_CLOEXEC);
    control->exec_tid = 0;
    control->exec_fd = -1;
    add_event(task->tid, KFP_EVENT_EXEC_FAILED, count, NULL);
    set_count(task, count);
    errno = error;
}

#define REAL(name) \
    static __typeof__(&name) real_##name; \
    if (!real_##name) real_##name = (__typeof__(&name))next(#name)

int execve(const char *path, char *const argv[], char *const envp[]) {
    REAL(execve);
    before_exec(path);
    int result = real_execve(path, argv, envp);
    after_exec();
    return result;
}

int execv(const char *path, char *const argv[]) {
    REAL(execv);
    before_exec(path);
    int result = real_execv(path, argv);
    after_exec();
    return result;
}

int execvp(const char *file, char *const argv[]) {
    REAL(execvp);
    before_exec(file);
    int result = real_execvp(file, argv);
    after_exec();
    return result;
}

int execvpe(const char *file, char *const argv[], char *const envp[]) {
    REAL(execvpe);
    before_exec(file);
    int result = real_execvpe(file, argv, envp);
    after_exec();
    return result;
}

int fexecve(int fd, char *const argv[], char *const envp[]) {
    REAL(fexecve);
    before_exec("(fexecve)");
    int result = real_fexecve(fd, argv, envp);
    after_exec();
    return result;
}

/// The arguments of execl, execlp and execle as a list (at most 4096).
#define COLLECT_ARGUMENTS(first, list, envp_out) \
    char *arguments[4097]; \
    int count = 0; \
    arguments[count++] = (char *)(first); \
    while (count < 4096 && arguments[count - 1] != NULL) arguments[count++] = va_arg(list, char *); \
    arguments[count] = NULL; \
    envp_out

int execl(const char *path, const char *argument, ...) {
    va_list list;
    va_start(list, argument);
    COLLECT_ARGUMENTS(argument, list, );
    va_end(list);
    return execv(path, arguments);
}

int execlp(const char *file, const char *argument, ...) {
    va_list list;
    va_start(list, argument);
    COLLECT_ARGUMENTS(argument, list, );
    va_end(list);
    return execvp(file, arguments);
}

int execle(const char *path, const char *argument, ...) {
    va_list list;
    va_start(list, argument);
    COLLECT_ARGUMENTS(argument, list, char *const *envp = va_arg(list, char *const *));
    va_end(list);
    return execve(path, arguments, envp);
}

// The Swift driver links every library product with libswiftCore (and through it libstdc++);
// the agent uses neither, and every traced process would load them. swift-autolink-extract puts
// this section's flags on the link line before the driver's own libraries, so --as-needed drops them.
// Not instrumented by AddressSanitizer: its redzone and its entry in asan_globals would point into
// a section the linker discards after reading it (`swift build --sanitize=address` failed to link).
__attribute__((section(".swift1_autolink_entries"), used, no_sanitize("address"))) static const char autolink_entries[] = "-Xlinker\0--as-needed";
