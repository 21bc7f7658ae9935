/* Unit tests of common/config: the file format, every value type, and file:line errors. */
#include "tap.h"

#include "../../common/config.h"
#include "../../common/log.h"
#include "../../common/version.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <unistd.h>

static int parse(struct config *cfg, const char *text, char *err, size_t errlen)
{
    config_defaults(cfg);
    err[0] = '\0';
    return config_parse(cfg, "test.conf", text, strlen(text), err, errlen);
}

static void expect_error(const char *text, const char *want, const char *name)
{
    struct config cfg;
    char err[512];
    int rc = parse(&cfg, text, err, sizeof err);
    is_int(rc, -1, "%s is refused", name);
    ok(strstr(err, want) != NULL, "%s: message '%s' contains '%s'", name, err, want);
    config_free(&cfg);
}

/* A trusted_issuer key file: an RS key whose n is 1024 bits (10^308 + 1 is odd). */
static void key_file_write(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fprintf(f, "{\"algorithm\":\"RS\",\"n\":\"1");
    for (int i = 0; i < 307; i++)
        fputc('0', f);
    fprintf(f, "1\",\"e\":\"65537\"}\n");
    fclose(f);
}

static void test_defaults(void)
{
    struct config cfg;
    char err[512];
    is_int(parse(&cfg, "", err, sizeof err), 0, "an empty file is valid");
    is_str(cfg.listen, "*:8282", "default listen is port 8282");
    is_int(cfg.workers, 0, "default workers is one per core");
    is_int(cfg.max_message_size, 4096, "default max_message_size");
    is_int(cfg.max_output_buffer, 65536, "default max_output_buffer is 64 KiB");
    is_int(cfg.notification_ttl_ms, 3600000, "default notification_ttl is an hour");
    is_int(cfg.max_pending_notifications, 100, "default max_pending_notifications");
    is_str(cfg.admin_listen, "127.0.0.1:8283", "the admin endpoint is on loopback by default");
    is_str(cfg.source_url, PRESENCED_SOURCE, "default source_url is the build's SOURCE_URL");
    ok(strcmp(cfg.source_url, "unknown") != 0, "the build says where its source is: %s",
       cfg.source_url);
    config_free(&cfg);
    is_int(parse(&cfg, "source_url https://example.test/presenced.git\n", err, sizeof err), 0,
           "source_url");
    is_str(cfg.source_url, "https://example.test/presenced.git", "source_url is read");
    config_free(&cfg);
}

static void test_values(void)
{
    struct config cfg;
    char err[512];
    const char *text = "# a comment\n"
                       "  listen 127.0.0.1:9000  \r\n"
                       "\n"
                       "workers 3\n"
                       "ping_interval 1m\n"
                       "ping_timeout 2500ms\n"
                       "drain_timeout 2\n"
                       "max_message_size 8k\n"
                       "map_size 64M\n"
                       "audience https://a.example\n"
                       "audience http://localhost:8282\n"
                       "trusted_issuer login.persona.org\n"
                       "trusted_issuer accounts.example.org /tmp/presenced-test-key.json\n"
                       "log_level debug\n"
                       "admin_listen off\n"
                       "verifier https://verifier.example/v2\n"
                       "verify_timeout 1500ms\n"
                       "issuer_cache_ttl 2h\n"
                       "issuer_failure_ttl 10s\n"
                       "ca_file /etc/hostname\n"
                       "connect_to idp.example:443:127.0.0.1:8443\n"
                       "connect_to other.example:443:[::1]:9443\n";
    key_file_write("/tmp/presenced-test-key.json");
    is_int(parse(&cfg, text, err, sizeof err), 0, "a full file parses (%s)", err);
    is_str(cfg.listen, "127.0.0.1:9000", "listen with trailing spaces and CRLF");
    is_int(cfg.workers, 3, "workers");
    is_int(cfg.ping_interval_ms, 60000, "1m is 60000 ms");
    is_int(cfg.ping_timeout_ms, 2500, "2500ms");
    is_int(cfg.drain_timeout_ms, 2000, "a bare number is seconds");
    is_int(cfg.max_message_size, 8192, "8k is 8192 bytes");
    is_int(cfg.map_size, 64 * 1024 * 1024, "64M");
    is_int(cfg.audience_count, 2, "audience may repeat");
    is_str(cfg.audience[1], "http://localhost:8282", "second audience kept in order");
    is_int(cfg.trusted_issuer_count, 2, "trusted_issuer may repeat");
    ok(cfg.trusted_issuer[0].key_file == NULL, "issuer without key file fetches its key");
    is_str(cfg.trusted_issuer[1].key_file, "/tmp/presenced-test-key.json", "issuer key file");
    is_str(cfg.verifier, "https://verifier.example/v2", "verifier");
    is_int(cfg.verifier_protocol, 2, "a verifier URL ending in /v2 speaks v2");
    is_int(cfg.verify_timeout_ms, 1500, "verify_timeout");
    is_int(cfg.issuer_cache_ttl_ms, 7200000, "issuer_cache_ttl");
    is_int(cfg.issuer_failure_ttl_ms, 10000, "issuer_failure_ttl");
    is_str(cfg.ca_file, "/etc/hostname", "ca_file");
    is_int(cfg.connect_to_count, 2, "connect_to may repeat");
    is_str(cfg.connect_to[1], "other.example:443:[::1]:9443", "connect_to to an IPv6 address");
    is_int(cfg.log_level, LOG_LEVEL_DEBUG, "log_level debug");
    is_str(cfg.admin_listen, "off", "admin_listen off");
    is_str(cfg.path, "test.conf", "the file name is remembered for reloads");
    config_free(&cfg);
}

static void test_identity_keys(void)
{
    struct config cfg;
    char err[512];
    const char *text = "audience HTTPS://Presence.Example:443\n"
                       "verifier https://verifier.example/verify v2\n";
    is_int(parse(&cfg, text, err, sizeof err), 0, "identity keys parse (%s)", err);
    is_str(cfg.audience[0], "https://presence.example", "audiences are kept canonical");
    is_int(cfg.verifier_protocol, 2, "the protocol word wins over the path");
    config_free(&cfg);
    is_int(parse(&cfg, "verifier https://v.example/verify\n", err, sizeof err), 0, "v1 URL");
    is_int(cfg.verifier_protocol, 1, "v1 by default");
    is_int(cfg.audience_count, 1, "without audience lines, one audience");
    is_str(cfg.audience[0], "http://localhost:8282", "public_url's origin");
    config_free(&cfg);
    is_int(parse(&cfg, "public_url https://p.example:443/presence/\n", err, sizeof err), 0,
           "public_url with a path");
    is_str(cfg.audience[0], "https://p.example", "its origin is the audience");
    config_free(&cfg);
    expect_error("verifier https://v.example v3\n", "test.conf:1: verifier: protocol 'v3'",
                 "an unknown verifier protocol");
    expect_error("connect_to idp.example:443\n", "test.conf:1: connect_to:",
                 "connect_to without a target");
    expect_error("ca_file /nonexistent/ca.pem\n",
                 "test.conf:1: ca_file: cannot read /nonexistent/ca.pem", "an unreadable CA file");
    expect_error("trusted_issuer a.example /etc/hostname\n",
                 "test.conf:1: trusted_issuer: /etc/hostname: support document is not",
                 "an issuer key file that holds no key");
    expect_error("verify_timeout 10ms\n", "test.conf:1: verify_timeout: 10ms is out of range",
                 "a verify_timeout too short");
}

static void test_oidc_keys(void)
{
    struct config cfg;
    char err[512];
    const char *path = "/tmp/presenced-test-config.jwks";
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
              "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
              f);
        fclose(f);
    }
    char text[512];
    snprintf(text, sizeof text,
             "oidc_issuer https://accounts.example.com\noidc_issuer https://op.example/t1 %s\n"
             "oidc_audience presenced\noidc_audience https://presence.example\n",
             path);
    is_int(parse(&cfg, text, err, sizeof err), 0, "OpenID keys parse (%s)", err);
    is_int(cfg.oidc_issuer_count, 2, "two issuers");
    ok(cfg.oidc_issuer[0].jwks_file == NULL, "the first discovered");
    is_str(cfg.oidc_issuer[1].jwks_file, path, "the second from a file");
    is_int(cfg.oidc_audience_count, 2, "two audiences, kept as written");
    is_str(cfg.oidc_audience[1], "https://presence.example", "an audience is any string");
    config_free(&cfg);
    remove(path);
    expect_error("oidc_audience a\noidc_issuer https://op.example/ /nonexistent.jwks\n",
                 "test.conf:2: oidc_issuer: /nonexistent.jwks:", "a missing JWKS file");
    expect_error("oidc_audience a\noidc_issuer https://op.example /etc/hostname\n",
                 "test.conf:2: oidc_issuer: /etc/hostname: key set is not", "a file of no keys");
    expect_error("oidc_issuer https://op.example\n", "test.conf:1: oidc_issuer needs oidc_audience",
                 "an issuer without audience");
    expect_error("oidc_audience a\noidc_issuer op.example\n", "test.conf:2: oidc_issuer: 'op.example'",
                 "an issuer that is no URL");
    expect_error("oidc_audience a\noidc_issuer https://op.example?x=1\n",
                 "test.conf:2: oidc_issuer:", "an issuer with a query");
    expect_error("oidc_audience a\noidc_issuer https://op.example a b\n",
                 "test.conf:2: oidc_issuer: expected ISSUER [JWKS_FILE]", "three words");
}

static void test_errors(void)
{
    expect_error("listen 8282\nfrobnicate yes\n", "test.conf:2: unknown key 'frobnicate'",
                 "an unknown key");
    expect_error("\n\nworkers 0\n", "test.conf:3: workers", "workers 0");
    expect_error("workers lots\n", "test.conf:1:", "workers not a number");
    expect_error("ping_interval soon\n", "test.conf:1: ping_interval: 'soon' is not a duration",
                 "a bad duration");
    expect_error("ping_interval 10x\n", "test.conf:1:", "a duration with an unknown unit");
    expect_error("max_message_size 10\n", "test.conf:1: max_message_size: 10 is out of range",
                 "a size below its minimum");
    expect_error("max_message_size 99999999999999999999\n", "test.conf:1:", "an overflowing size");
    /* Out of range: the message says the range, in the units the file would use. */
    expect_error("max_message_size 2M\n", "max_message_size: 2M is out of range (from 64 to 1M)",
                 "a size range");
    expect_error("verify_timeout 50ms\n", "verify_timeout: 50ms is out of range (from 100ms to 1m)",
                 "a duration range");
    expect_error("offline_grace 2h\n", "offline_grace: 2h is out of range (from 0 to 1h)",
                 "a range from 0");
    expect_error("session_ttl 30s\n", "session_ttl: 30s is out of range (from 1m to 365d)",
                 "a range in days");
    expect_error("status_rate 0\n", "status_rate: 0 is out of range (from 1 to 1000000)",
                 "a number range");
    expect_error("max_output_buffer 8k\n", "test.conf:1: max_output_buffer: 8k is out of range",
                 "max_output_buffer below 16 KiB (room for a page of bulk output)");
    expect_error("max_output_buffer 1g\n", "test.conf:1: max_output_buffer:",
                 "max_output_buffer above 64 MiB");
    expect_error("status_rate -1\n", "test.conf:1:", "a negative number");
    expect_error("listen 70000\n", "test.conf:1: listen: '70000': port", "a port too large");
    expect_error("listen example.com:80\n", "test.conf:1: listen:", "a host name to resolve");
    expect_error("listen ::1:80\n", "test.conf:1: listen:", "IPv6 without brackets");
    expect_error("listen 1\nlisten 2\n", "test.conf:2: listen is already set at line 1",
                 "a key set twice");
    expect_error("data_dir /a /b\n", "test.conf:1: data_dir: expected one value, got 2",
                 "two values");
    expect_error("data_dir\n", "test.conf:1: data_dir: expected one value, got 0", "no value");
    expect_error("listen *:8282 # the public port\n",
                 "listen: expected one value, got 3 (# after a value starts no comment",
                 "a comment after a value is named as such");
    expect_error("log_level loud\n", "test.conf:1: log_level", "an unknown log level");
    expect_error("public_url ftp://x\n", "test.conf:1: public_url", "a URL of another scheme");
    expect_error("public_url https://p.example/?a=1\n",
                 "test.conf:1: public_url: 'https://p.example/?a=1' may not have a query",
                 "a public_url with a query (the redirect URI would be made after it)");
    expect_error("public_url https://p.example#top\n", "test.conf:1: public_url:",
                 "a public_url with a fragment");
    expect_error("audience example.com\n", "test.conf:1: audience", "an audience not an origin");
    expect_error("trusted_issuer https://x.org\n", "test.conf:1: trusted_issuer",
                 "an issuer given as a URL");
    expect_error("trusted_issuer a b c\n", "test.conf:1: trusted_issuer: expected HOST [KEYFILE]",
                 "an issuer with three words");
    expect_error("\ntls_cert /x.pem\n", "test.conf:2: tls_cert and tls_key must be set together",
                 "a certificate without a key");
    expect_error("tls_key /etc/hostname\ntls_cert /nonexistent/cert.pem\n",
                 "test.conf:2: tls_cert: cannot read /nonexistent/cert.pem: No such file",
                 "an unreadable certificate");
    expect_error("trusted_issuer a.example /nonexistent/key.json\n",
                 "test.conf:1: trusted_issuer: cannot read /nonexistent/key.json",
                 "an unreadable issuer key");
    expect_error("map_size 64M\nmax_map_size 16M\n", "test.conf:2: max_map_size",
                 "max_map_size below map_size");
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "data_dir ", 9);
    expect_error(big, "test.conf:1: line longer", "a line too long");
}

static void test_cluster_keys(void)
{
    struct config cfg;
    char err[512];
    is_int(parse(&cfg, "", err, sizeof err), 0, "no cluster");
    ok(cfg.cluster == NULL && cfg.node_name == NULL, "a single node by default");
    is_int(cfg.node_timeout_ms, 5000, "node_timeout defaults to 5 s");
    is_int(cfg.cluster_shards, 12, "cluster_shards defaults to 12");
    is_int(cfg.cluster_replicas, 3, "cluster_replicas defaults to 3");
    config_free(&cfg);
    is_int(parse(&cfg,
                 "cluster nats://127.0.0.1:4222,nats://[::1]:4223,nats://engine-3.example:4224\n"
                 "node_name node-1\nnode_timeout 3s\ncluster_shards 3\ncluster_replicas 1\n",
                 err, sizeof err),
           0, "a node of a cluster: %s", err);
    is_str(cfg.cluster, "nats://127.0.0.1:4222,nats://[::1]:4223,nats://engine-3.example:4224",
           "the server list");
    is_str(cfg.node_name, "node-1", "node_name");
    ok(cfg.node_timeout_ms == 3000 && cfg.cluster_shards == 3 && cfg.cluster_replicas == 1,
       "node_timeout, cluster_shards, cluster_replicas");
    config_free(&cfg);
    expect_error("cluster nats://127.0.0.1:4222\n", "test.conf:1: cluster needs node_name",
                 "cluster without node_name");
    expect_error("node_name n1\n", "test.conf:1: node_name is only for a node of a cluster",
                 "node_name without cluster");
    expect_error("node_name N1\n", "test.conf:1: node_name: 'N1' must be", "an upper-case name");
    expect_error("node_name a.b\n", "test.conf:1: node_name:", "a dot in the name");
    expect_error("cluster http://127.0.0.1:4222\nnode_name n1\n",
                 "test.conf:1: cluster: 'http://127.0.0.1:4222' must be nats://HOST:PORT",
                 "another scheme");
    expect_error("cluster nats://127.0.0.1\nnode_name n1\n", "test.conf:1: cluster:",
                 "no port");
    expect_error("cluster nats://127.0.0.1:4222,\nnode_name n1\n", "test.conf:1: cluster: ''",
                 "a trailing comma");
    expect_error("cluster nats://a:99999\nnode_name n1\n", "test.conf:1: cluster:",
                 "a port too large");
    expect_error("cluster nats://a:1/x\nnode_name n1\n", "test.conf:1: cluster:", "a path");
    expect_error("node_timeout 1s\n", "test.conf:1: node_timeout: 1s is out of range",
                 "node_timeout below 2 s");
    expect_error("cluster nats://a:1\nnode_name n1\nmax_devices_per_user 5000\n",
                 "test.conf:3: max_devices_per_user: a node of a cluster allows at most 1024",
                 "more devices than a user record holds");
}

static void test_nul_byte(void)
{
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    const char text[] = "workers 2\nlisten 80\0\n";
    is_int(config_parse(&cfg, "nul.conf", text, sizeof text - 1, err, sizeof err), -1,
           "a NUL byte is refused");
    ok(strstr(err, "nul.conf:2:") != NULL, "NUL byte reported at its line (%s)", err);
    config_free(&cfg);
}

static void test_load_missing_file(void)
{
    struct config cfg;
    char err[512];
    config_defaults(&cfg);
    is_int(config_load(&cfg, "/nonexistent/presenced.conf", err, sizeof err), -1,
           "a missing file is an error");
    ok(strstr(err, "/nonexistent/presenced.conf:0: cannot open") != NULL, "names the file (%s)",
       err);
    config_free(&cfg);
}

static void test_paths_absolute(void)
{
    struct config cfg;
    char err[512];
    parse(&cfg, "data_dir var\nlog_file /var/log/p.log\n", err, sizeof err);
    is_int(config_paths_absolute(&cfg, "/srv/presenced"), 0, "paths made absolute");
    is_str(cfg.data_dir, "/srv/presenced/var", "a relative data_dir starts at the base");
    is_str(cfg.log_file, "/var/log/p.log", "an absolute path stays");
    config_free(&cfg);
}

/* offline_grace, last_seen_ttl, and Web Push's vapid_key and vapid_subject (SPEC.md §7). */
static void test_presence_and_push_keys(void)
{
    struct config cfg;
    char err[512], path[] = "/tmp/presenced-test-vapid-XXXXXX", text[600];
    is_int(parse(&cfg, "", err, sizeof err), 0, "defaults");
    ok(cfg.offline_grace_ms == 5000 && cfg.last_seen_ttl_ms == 7LL * 86400 * 1000 &&
           cfg.vapid_key == NULL,
       "offline_grace 5s, last_seen_ttl 7d, push off");
    config_free(&cfg);
    is_int(parse(&cfg, "offline_grace 0\nlast_seen_ttl 0\n", err, sizeof err), 0, "0 turns both off");
    config_free(&cfg);
    expect_error("offline_grace 2h\n", "test.conf:1: offline_grace: 2h is out of range",
                 "a grace over an hour");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    EVP_PKEY_free(key);
    fclose(f);
    snprintf(text, sizeof text, "vapid_key %s\n", path);
    expect_error(text, "test.conf:1: vapid_key and vapid_subject must be set together",
                 "vapid_key alone");
    snprintf(text, sizeof text, "vapid_key %s\nvapid_subject ops@example.com\n", path);
    expect_error(text, "test.conf:2: vapid_subject: 'ops@example.com' must be a mailto: or https:",
                 "a subject that is not a URI");
    expect_error("vapid_key /nonexistent.pem\nvapid_subject mailto:ops@example.com\n",
                 "test.conf:1: vapid_key: cannot read /nonexistent.pem", "a missing key file");
    snprintf(text, sizeof text, "vapid_key /etc/hostname\nvapid_subject mailto:o@example.com\n");
    expect_error(text, "test.conf:1: vapid_key: /etc/hostname holds no PEM private key",
                 "a file that is not a key");
    snprintf(text, sizeof text, "vapid_key %s\nvapid_subject mailto:ops@example.com\n", path);
    int rc = parse(&cfg, text, err, sizeof err);
    is_int(rc, 0, "a P-256 key and a mailto: subject: %s", err);
    if (rc == 0)
        is_str(cfg.vapid_subject, "mailto:ops@example.com", "the subject");
    config_free(&cfg);
    unlink(path);
}

int main(void)
{
    test_defaults();
    test_presence_and_push_keys();
    test_values();
    test_errors();
    test_cluster_keys();
    test_identity_keys();
    test_oidc_keys();
    test_nul_byte();
    test_load_missing_file();
    test_paths_absolute();
    return tap_done();
}
