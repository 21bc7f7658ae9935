/* tls_probe: what OpenSSL keeps per idle TLS connection on the server side, by the source line
 * that allocated it, with the SSL_CTX settings presenced's workers use (worker/lws_setup.c and
 * the SSL_set_mode of lws 4.1's server). COUNT connections over socket pairs, each handshake
 * done and the client's first read made (it takes the session tickets); only the memory
 * allocated inside the server's calls, and still held, is counted.
 *   tls_probe CERT KEY [COUNT] [TICKETS]   (COUNT 1000; TICKETS the session tickets issued, 1)
 * Prints the held bytes per connection by allocating line, then their total. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct held {
    void *ptr; /* NULL: free slot; HELD_GONE: freed */
    size_t size;
    const char *file;
    int line;
};

#define HELD_SLOTS (1u << 23)
#define HELD_GONE ((void *)1)
#define LINES_MAX 512

static struct {
    struct held *slots;
    int counting; /* inside a server call */
} probe;

static size_t slot_of(const void *ptr)
{
    return (size_t)(((uintptr_t)ptr >> 4) * 2654435761u) & (HELD_SLOTS - 1);
}

static void held_add(void *ptr, size_t size, const char *file, int line)
{
    size_t i = slot_of(ptr);
    while (probe.slots[i].ptr != NULL && probe.slots[i].ptr != HELD_GONE)
        i = (i + 1) & (HELD_SLOTS - 1);
    probe.slots[i] = (struct held){ ptr, size, file, line };
}

static void held_drop(void *ptr)
{
    if (ptr == NULL)
        return;
    for (size_t i = slot_of(ptr); probe.slots[i].ptr != NULL; i = (i + 1) & (HELD_SLOTS - 1))
        if (probe.slots[i].ptr == ptr) {
            probe.slots[i].ptr = HELD_GONE;
            return;
        }
}

static void *probe_malloc(size_t size, const char *file, int line)
{
    void *ptr = malloc(size);
    if (ptr != NULL && probe.counting)
        held_add(ptr, size, file, line);
    return ptr;
}

static void *probe_realloc(void *old, size_t size, const char *file, int line)
{
    held_drop(old);
    void *ptr = realloc(old, size);
    if (ptr != NULL && probe.counting)
        held_add(ptr, size, file, line);
    return ptr;
}

static void probe_free(void *ptr, const char *file, int line)
{
    (void)file;
    (void)line;
    held_drop(ptr);
    free(ptr);
}

struct line_total {
    const char *file;
    int line;
    size_t bytes, count;
};

static int by_bytes(const void *a, const void *b)
{
    const struct line_total *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

static void report(int connections)
{
    static struct line_total lines[LINES_MAX];
    int used = 0;
    size_t total = 0;
    for (size_t i = 0; i < HELD_SLOTS; i++) {
        struct held *h = &probe.slots[i];
        if (h->ptr == NULL || h->ptr == HELD_GONE)
            continue;
        int k = 0;
        while (k < used && !(lines[k].line == h->line && lines[k].file == h->file))
            k++;
        if (k == used && used < LINES_MAX)
            lines[used++] = (struct line_total){ h->file, h->line, 0, 0 };
        if (k < used) {
            lines[k].bytes += h->size;
            lines[k].count++;
        }
        total += h->size;
    }
    qsort(lines, (size_t)used, sizeof *lines, by_bytes);
    for (int k = 0; k < used && lines[k].bytes >= (size_t)connections * 16; k++)
        printf("%6zu B in %4.1f allocations  %s:%d\n", lines[k].bytes / (size_t)connections,
               (double)lines[k].count / connections, lines[k].file ? lines[k].file : "?",
               lines[k].line);
    printf("%6zu B per connection held by OpenSSL (requested sizes, without malloc's own)\n",
           total / (size_t)connections);
}

static SSL_CTX *server_context(const char *cert, const char *key, int tickets)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return NULL;
    /* lws 4.1's vhost options, then presenced's (worker/lws_setup.c). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_SINGLE_DH_USE | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
    return ctx;
}

/* One connection: the server's SSL counted, the client's not. */
static int connect_one(SSL_CTX *server, SSL_CTX *client, SSL **server_ssl, SSL **client_ssl)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
        return -1;
    fcntl(pair[0], F_SETFL, O_NONBLOCK);
    fcntl(pair[1], F_SETFL, O_NONBLOCK);
    *client_ssl = SSL_new(client);
    SSL_set_fd(*client_ssl, pair[1]);
    SSL_set_connect_state(*client_ssl);
    probe.counting = 1;
    *server_ssl = SSL_new(server);
    SSL_set_fd(*server_ssl, pair[0]);
    SSL_set_accept_state(*server_ssl);
    SSL_set_mode(*server_ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    probe.counting = 0;
    int done = 0;
    for (int step = 0; step < 64 && done != 2; step++) {
        int client_done = SSL_do_handshake(*client_ssl) == 1;
        probe.counting = 1;
        int server_done = SSL_do_handshake(*server_ssl) == 1;
        probe.counting = 0;
        done = client_done + server_done;
    }
    char byte;
    SSL_read(*client_ssl, &byte, 1); /* takes the tickets; nothing else comes */
    return done == 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tls_probe CERT KEY [COUNT] [TICKETS]\n");
        return 2;
    }
    int connections = argc > 3 ? atoi(argv[3]) : 1000;
    int tickets = argc > 4 ? atoi(argv[4]) : 1;
    probe.slots = calloc(HELD_SLOTS, sizeof *probe.slots);
    if (connections < 1 || connections > 20000 || probe.slots == NULL ||
        CRYPTO_set_mem_functions(probe_malloc, probe_realloc, probe_free) != 1) {
        fprintf(stderr, "tls_probe: 1 to 20000 connections, and memory functions set first\n");
        return 2;
    }
    SSL_CTX *server = server_context(argv[1], argv[2], tickets);
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    if (server == NULL || client == NULL) {
        fprintf(stderr, "tls_probe: cannot load %s and %s\n", argv[1], argv[2]);
        return 1;
    }
    SSL **servers = calloc((size_t)connections, sizeof *servers);
    SSL **clients = calloc((size_t)connections, sizeof *clients);
    for (int i = 0; i < connections; i++)
        if (servers == NULL || clients == NULL ||
            connect_one(server, client, &servers[i], &clients[i]) != 0) {
            fprintf(stderr, "tls_probe: handshake %d failed\n", i);
            return 1;
        }
    printf("%d connections, %s, %s, %d session ticket(s)\n", connections,
           SSL_get_version(servers[0]), SSL_CIPHER_get_name(SSL_get_current_cipher(servers[0])),
           tickets);
    report(connections);
    return 0;
}
