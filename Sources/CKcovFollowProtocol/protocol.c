#define _GNU_SOURCE
#include "CKcovFollowProtocol.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

int kfp_send(int socket, const struct kfp_message *message, int fd) {
    struct iovec part = {.iov_base = (void *)message, .iov_len = sizeof *message};
    union {
        char buffer[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr header = {.msg_iov = &part, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        header.msg_control = control.buffer;
        header.msg_controllen = sizeof control.buffer;
        struct cmsghdr *rights = CMSG_FIRSTHDR(&header);
        rights->cmsg_level = SOL_SOCKET;
        rights->cmsg_type = SCM_RIGHTS;
        rights->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(rights), &fd, sizeof fd);
    }
    for (;;) {
        ssize_t sent = sendmsg(socket, &header, MSG_NOSIGNAL);
        if (sent == (ssize_t)sizeof *message) return 0;
        if (sent >= 0) {
            errno = EMSGSIZE;
            return -1;
        }
        if (errno != EINTR) return -1;
    }
}

int kfp_receive(int socket, struct kfp_message *message, int *fd) {
    *fd = -1;
    struct iovec part = {.iov_base = message, .iov_len = sizeof *message};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } control;
    struct msghdr header = {.msg_iov = &part, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer};
    ssize_t got;
    do {
        got = recvmsg(socket, &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -1;
    for (struct cmsghdr *part = CMSG_FIRSTHDR(&header); part != NULL; part = CMSG_NXTHDR(&header, part)) {
        if (part->cmsg_level != SOL_SOCKET || part->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (part->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t index = 0; index < count; index++) {
            int received;
            memcpy(&received, CMSG_DATA(part) + index * sizeof(int), sizeof received);
            if (*fd < 0) *fd = received;
            else close(received);
        }
    }
    if (got == 0) return 0;
    if (got != (ssize_t)sizeof *message || (header.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (*fd >= 0) close(*fd);
        *fd = -1;
        errno = EBADMSG;
        return -1;
    }
    return 1;
}

static socklen_t abstract_address(const char *name, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    size_t length = strlen(name);
    if (length + 1 > sizeof address->sun_path) length = sizeof address->sun_path - 1;
    memcpy(address->sun_path + 1, name, length);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length);
}

int kfp_listen(const char *name) {
    int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) return -1;
    struct sockaddr_un address;
    socklen_t length = abstract_address(name, &address);
    if (bind(listener, (struct sockaddr *)&address, length) != 0 || listen(listener, 512) != 0) {
        int error = errno;
        close(listener);
        errno = error;
        return -1;
    }
    return listener;
}

int kfp_accept(int listener) {
    int connection;
    do {
        connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (connection < 0 && errno == EINTR);
    return connection;
}

int kfp_connect(const char *name) {
    int connection = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (connection < 0) return -1;
    struct sockaddr_un address;
    socklen_t length = abstract_address(name, &address);
    int result;
    do {
        result = connect(connection, (struct sockaddr *)&address, length);
    } while (result != 0 && errno == EINTR);
    if (result != 0) {
        int error = errno;
        close(connection);
        errno = error;
        return -1;
    }
    return connection;
}

int kfp_control_file(void) {
    int fd = (int)syscall(SYS_memfd_create, "kcovfollow", 0);
    if (fd < 0) return -1;
    if (ftruncate(fd, KFP_CONTROL_BYTES) != 0) {
        int error = errno;
        close(fd);
        errno = error;
        return -1;
    }
    return fd;
}
