#ifndef CKCOVFOLLOWPROTOCOL_H
#define CKCOVFOLLOWPROTOCOL_H

// What the follow agent (libKcovFollowAgent.so) and the collector (`kcovctl trace --follow`) share:
// the messages on the collector's Unix socket and the per-process control page.
// Docs/follow.md#mechanism-an-agent-the-loader-injects-a-collector-that-holds-every-fd

#include <stdint.h>
#include <sys/types.h>

/// Environment: the collector's abstract socket name (without the leading NUL). Its presence turns the agent on.
#define KFP_ENV_SOCKET "KCOVFOLLOW_SOCKET"
/// Environment: buffer size of every task in 64-bit words, count word included.
#define KFP_ENV_WORDS "KCOVFOLLOW_WORDS"
/// Environment: the kcov trace mode, 0 PC or 1 CMP (KCOV_ENABLE's argument).
#define KFP_ENV_MODE "KCOVFOLLOW_MODE"
/// Environment, written by the agent: "<control fd>:<socket fd>" of this process, kept across execve.
#define KFP_ENV_STATE "KCOVFOLLOW_STATE"

/// Message kinds, agent to collector.
enum kfp_kind {
    /// A process connected: pid, ppid, text = its executable; carries the control page's fd.
    KFP_HELLO = 1,
    /// A task is set up and about to enable: pid, tid, text = the image it runs (AT_EXECFN);
    /// carries its kcov fd.
    KFP_TASK = 2,
    /// A thread disabled its kcov and is ending: pid, tid. Its buffer is final.
    KFP_DONE = 3,
    /// A task could not be traced: pid, tid, error = errno, text = the step that failed.
    KFP_FAILED = 4,
};

/// One message (SOCK_SEQPACKET: one send, one receive).
struct kfp_message {
    uint32_t kind;
    int32_t pid;
    int32_t tid;
    int32_t ppid;
    int32_t error;
    uint32_t reserved;
    char text[256];
};

/// Control page events.
enum kfp_event_kind {
    /// Task `tid` calls an exec function for `path`; its buffer held `position` entries.
    KFP_EVENT_EXECING = 1,
    /// The exec of task `tid` failed; the image goes on.
    KFP_EVENT_EXEC_FAILED = 2,
    /// A new image of this process (its task is now `tid`, the pid) loaded the agent; `path` is
    /// its AT_EXECFN and `position` the count after the agent mapped the buffer (agentTail).
    KFP_EVENT_LOADED = 3,
};

/// One control page event (256 bytes).
struct kfp_event {
    int32_t tid;
    int32_t kind;
    uint64_t position;
    char path[240];
};

#define KFP_CONTROL_MAGIC 0x6b63666cu
/// The pid of a control page the collector made for the command it starts: the command's first
/// image claims it (compare and swap) when it loads the agent.
#define KFP_PID_UNCLAIMED (-1)
#define KFP_CONTROL_VERSION 1
#define KFP_CONTROL_EVENTS 60
#define KFP_CONTROL_BYTES 16384

/// Exit kinds in the control page.
enum kfp_exit_kind { KFP_EXIT_NONE = 0, KFP_EXIT_EXIT = 1, KFP_EXIT_UNDERSCORE = 2 };

/// The control page: one memfd per process, shared by the agent (writes, no syscalls) and the
/// collector (reads when the process is gone). It survives execve with its process.
struct kfp_control {
    uint32_t magic;
    uint32_t version;
    /// The process the page belongs to (KFP_PID_UNCLAIMED until the collector's command claims it).
    int32_t pid;
    /// The task inside an exec function (0: none) and its kcov fd, kept open across the exec.
    int32_t exec_tid;
    int32_t exec_fd;
    /// How the process ended as the agent saw it (kfp_exit_kind) and the status.
    int32_t exit_kind;
    int32_t exit_status;
    /// Events written; more than KFP_CONTROL_EVENTS means later ones were lost.
    uint32_t event_count;
    uint8_t reserved[32];
    struct kfp_event events[KFP_CONTROL_EVENTS];
};

_Static_assert(sizeof(struct kfp_control) <= KFP_CONTROL_BYTES, "control page size");

/// A new control page file: a memfd of KFP_CONTROL_BYTES, not close-on-exec (it follows the
/// process through execve). The fd, or -1 with errno.
int kfp_control_file(void);

/// Sends `message`, with `fd` attached (SCM_RIGHTS) when it is not -1. 0, or -1 with errno.
int kfp_send(int socket, const struct kfp_message *message, int fd);

/// Receives one message and its attached fd (-1 when none; received close-on-exec). Returns 1,
/// 0 at the end of the connection, or -1 with errno (EAGAIN when nothing is waiting).
int kfp_receive(int socket, struct kfp_message *message, int *fd);

/// The collector's side: a listening, non-blocking, close-on-exec SOCK_SEQPACKET socket bound to
/// the abstract `name`. Returns the fd, or -1 with errno.
int kfp_listen(const char *name);

/// Accepts one connection, non-blocking and close-on-exec; the fd or -1 with errno.
int kfp_accept(int listener);

/// The agent's side: a connected SOCK_SEQPACKET socket to the abstract `name`, not close-on-exec
/// (it follows the process through execve). The fd or -1 with errno.
int kfp_connect(const char *name);

#endif
