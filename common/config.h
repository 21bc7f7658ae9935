/* config: the presenced.conf file format (one "key value" per line) and its validated settings. */
#ifndef PRESENCED_CONFIG_H
#define PRESENCED_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LIST 16

struct config_issuer {
    char *host;
    char *key_file; /* NULL: the key is fetched from https://host/.well-known/browserid */
};

struct config_oidc_issuer {
    char *issuer;    /* the exact iss, an https URL */
    char *jwks_file; /* NULL: keys from the issuer's OpenID discovery document */
};

#define CONFIG_MAX_LOGINS 8
#define CONFIG_NODE_NAME_MAX 32
/* A user's devices live in one engine record in a cluster (cluster/record.h). */
#define CONFIG_CLUSTER_DEVICES_MAX 1024
#define CONFIG_SECRET_MAX 512
#define CONFIG_LABEL_MAX 64

/* oidc_login: web sign-in through an OpenID provider (the authorization code flow). */
struct config_oidc_login {
    char *issuer;
    char *client_id;
    char *secret; /* read from SECRET_FILE when the configuration is */
    char *label;  /* "Sign in with <label>" */
};

struct config {
    char *path; /* the file this was read from */

    char *listen; /* "[host:]port", "[v6]:port" */
    int workers;  /* 0 = one per core */
    char *data_dir;
    char *pid_file;
    char *log_file;     /* NULL = stderr */
    int log_level;      /* enum log_level */
    int log_format;     /* enum log_format: text (the default) or mozlog */
    char *admin_listen; /* "" or "off" disables */
    char *public_url;
    char *source_url; /* where presenced's source is, as /__version__ says */
    char *public_origin; /* canonical origin of public_url: the audience of the web login */
    char *audience[CONFIG_MAX_LIST]; /* canonical origins (origin_normalize) */
    size_t audience_count;
    int audience_given; /* audience lines were written (not only public_url's origin) */
    struct config_issuer trusted_issuer[CONFIG_MAX_LIST];
    size_t trusted_issuer_count;
    struct config_oidc_issuer oidc_issuer[CONFIG_MAX_LIST];
    size_t oidc_issuer_count;
    char *oidc_audience[CONFIG_MAX_LIST]; /* accepted aud values of tokens */
    size_t oidc_audience_count;
    int64_t dev_issuer; /* 1: the development issuer's tokens are accepted (never in production) */
    struct config_oidc_login oidc_login[CONFIG_MAX_LOGINS];
    size_t oidc_login_count;
    char *verifier;        /* NULL: assertions are verified locally */
    int verifier_protocol; /* 1 (Persona form) or 2 (JSON with trustedIssuers) */
    int64_t verify_timeout_ms;
    int64_t issuer_cache_ttl_ms;
    int64_t issuer_failure_ttl_ms;
    char *ca_file;                     /* NULL: the system's CA bundle */
    char *connect_to[CONFIG_MAX_LIST]; /* "HOST:PORT:ADDRESS:PORT" for the identity fetches */
    size_t connect_to_count;
    int64_t clock_skew_ms;
    int64_t session_ttl_ms; /* web sign-in */
    int64_t app_rate;       /* notify requests per second per app */
    int64_t app_burst;
    int64_t validate_private_addresses; /* 1: an app's domain may resolve to private addresses */
    char *tls_cert;
    char *tls_key;

    int64_t max_message_size;
    int64_t max_output_buffer; /* unsent bytes a WebSocket may have before it is a slow consumer */
    int64_t status_rate;
    int64_t status_burst;
    int64_t abuse_limit;
    int64_t max_devices_per_user;
    int64_t ping_interval_ms;
    int64_t ping_timeout_ms;
    int64_t notification_ttl_ms;
    int64_t max_pending_notifications;
    int64_t drain_timeout_ms;
    int64_t drain_grace_ms; /* QUIT: serve on, /__lbheartbeat__ 503, this long before draining */
    int64_t offline_grace_ms;   /* a departed device's status is held this long; 0: not held */
    int64_t last_seen_ttl_ms;   /* an offline user's "since" is kept this long; 0: not kept */
    char *vapid_key;     /* PEM P-256 private key of Web Push (RFC 8292); NULL: push is off */
    char *vapid_subject; /* mailto: or https: contact for push services, with vapid_key */

    int64_t map_size;         /* bytes of the LMDB map at start */
    int64_t max_map_size;     /* the map grows up to this on MDB_MAP_FULL */
    int64_t sync_interval_ms; /* 0 = flush every commit */
    int64_t max_connections;  /* per worker; 0 = as many as the file limit allows */

    /* SPEC 8: a node of a cluster on NATS JetStream. NULL: one machine, no engine. */
    char *cluster;              /* "nats://HOST:PORT[,nats://HOST:PORT…]", checked */
    char *node_name;            /* [a-z0-9-]{1,32}; required with cluster */
    int64_t node_timeout_ms;    /* a node silent this long is declared dead */
    int64_t cluster_shards;     /* user record buckets; fixed when the cluster is made */
    int64_t cluster_replicas;   /* JetStream replicas of every bucket and stream */
};

/* Fills cfg with the built-in defaults. */
int config_defaults(struct config *cfg);

/* Reads path into cfg (which holds the defaults). On error returns -1 and writes
 * "file:line: message" into err. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Parses a whole file's text already in memory; name is used in messages. */
int config_parse(struct config *cfg, const char *name, const char *text, size_t len, char *err,
                 size_t errlen);

void config_free(struct config *cfg);

/* Makes the relative paths of cfg (data_dir, pid_file, log_file, TLS and key files) start at
 * base_dir. */
int config_paths_absolute(struct config *cfg, const char *base_dir);
/* path itself when absolute, else base_dir/path; a new string, NULL when out of memory. */
char *config_path_from(const char *base_dir, const char *path);

/* Parsers shared with the command line and tests. Return 0 or -1. */
int config_parse_duration_ms(const char *text, int64_t *out);
int config_parse_size(const char *text, int64_t *out);

#endif
