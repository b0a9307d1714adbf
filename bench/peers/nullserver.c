/* nullserver.c: a do-nothing Xenstore socket server for the benchmarks' limit column: it answers every request at once, storing nothing.
 *
 *   nullserver SOCKET PIDFILE
 *
 * One thread and poll(), as C xenstored serves its sockets. Each request (the 16-byte header of
 * xs_wire.h and its payload) gets a reply of the same type, request id and transaction id:
 * READ -> 32 bytes 'x' (what xsbench writes), DIRECTORY -> the names k0..k99 (what xsbench's
 * `dir` mode checks), TRANSACTION_START -> "1", GET_PERMS -> "n0", everything else -> "OK". The
 * rate xsbench reaches against it is what the client, the socket and the machine allow: the limit
 * against which `make bench` states our daemon's single-request rates (issue 20).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS 256
#define HEADER 16
#define PAYLOAD_MAX 4096

enum { XS_DIRECTORY = 1, XS_READ = 2, XS_GET_PERMS = 3, XS_TRANSACTION_START = 6 };

struct client {
    int fd;
    size_t have;                            /* bytes of the current request received */
    unsigned char in[HEADER + PAYLOAD_MAX];
};

static struct client clients[MAX_CLIENTS];
static unsigned char directory_reply[PAYLOAD_MAX];
static size_t directory_length;

static int write_all(int fd, const unsigned char *bytes, size_t length)
{
    while (length) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

/* The reply to the complete request in c->in; -1 if the client should be dropped. */
static int answer(struct client *c)
{
    uint32_t type, length;
    memcpy(&type, c->in, 4);
    unsigned char out[HEADER + PAYLOAD_MAX];
    const unsigned char *payload;
    static const unsigned char ok[] = "OK", one[] = "1", n0[] = "n0";
    static unsigned char value[32];
    switch (type) {
    case XS_READ:
        memset(value, 'x', sizeof value);
        payload = value;
        length = sizeof value;
        break;
    case XS_DIRECTORY:
        payload = directory_reply;
        length = (uint32_t)directory_length;
        break;
    case XS_TRANSACTION_START:
        payload = one;
        length = sizeof one;
        break;
    case XS_GET_PERMS:
        payload = n0;
        length = sizeof n0;
        break;
    default:
        payload = ok;
        length = sizeof ok;
    }
    memcpy(out, c->in, 12);                 /* type, request id, transaction id */
    memcpy(out + 12, &length, 4);
    memcpy(out + HEADER, payload, length);
    return write_all(c->fd, out, HEADER + length);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nullserver SOCKET PIDFILE\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (int k = 0; k < 100; k++)
        directory_length += (size_t)sprintf((char *)directory_reply + directory_length, "k%d", k) + 1;
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (listener < 0 || strlen(argv[1]) >= sizeof address.sun_path) {
        perror("nullserver: socket");
        return 1;
    }
    strcpy(address.sun_path, argv[1]);
    unlink(argv[1]);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 64) < 0) {
        perror("nullserver: bind");
        return 1;
    }
    FILE *pidfile = fopen(argv[2], "w");
    if (!pidfile) {
        perror("nullserver: pid file");
        return 1;
    }
    fprintf(pidfile, "%d\n", (int)getpid());
    fclose(pidfile);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    struct pollfd fds[MAX_CLIENTS + 1];
    for (;;) {
        int count = 0, slot[MAX_CLIENTS + 1];
        fds[count] = (struct pollfd){ .fd = listener, .events = POLLIN };
        slot[count++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd >= 0) {
                fds[count] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN };
                slot[count++] = i;
            }
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("nullserver: poll");
            return 1;
        }
        for (int k = 0; k < count; k++) {
            if (!fds[k].revents)
                continue;
            if (slot[k] < 0) {
                int fd = accept(listener, NULL, NULL);
                int i = 0;
                while (fd >= 0 && i < MAX_CLIENTS && clients[i].fd >= 0)
                    i++;
                if (fd >= 0 && i == MAX_CLIENTS) {
                    close(fd);
                } else if (fd >= 0) {
                    clients[i].fd = fd;
                    clients[i].have = 0;
                }
                continue;
            }
            struct client *c = &clients[slot[k]];
            ssize_t n = read(c->fd, c->in + c->have, sizeof c->in - c->have);
            if (n <= 0) {
                close(c->fd);
                c->fd = -1;
                continue;
            }
            c->have += (size_t)n;
            /* answer every complete request received so far */
            for (;;) {
                uint32_t length;
                if (c->have < HEADER)
                    break;
                memcpy(&length, c->in + 12, 4);
                if (length > PAYLOAD_MAX) {
                    close(c->fd);
                    c->fd = -1;
                    break;
                }
                if (c->have < HEADER + length)
                    break;
                if (answer(c) < 0) {
                    close(c->fd);
                    c->fd = -1;
                    break;
                }
                memmove(c->in, c->in + HEADER + length, c->have - HEADER - length);
                c->have -= HEADER + length;
            }
        }
    }
}
