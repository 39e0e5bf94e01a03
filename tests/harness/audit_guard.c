/*
 * audit_guard.c - LD_AUDIT library for the cosmoext test harness.
 *
 * cosmoext images ("*.cosmoext") must be mapped by cosmoext's own loader,
 * never by the system dynamic linker.  Loaded through LD_AUDIT (see
 * rtld-audit(7)), this library sees every object name the dynamic linker
 * searches for (la_objsearch) and every object it opens (la_objopen):
 *
 *   - each name is appended to the file named by $CX_AUDIT_LOG, one line
 *     each: "search <name>" or "open <name>";
 *   - if a name contains ".cosmoext" anywhere, it writes
 *       cx-audit: dynamic linker asked to open <name>
 *     to stderr and terminates the process with _exit(97).
 *
 * Audit libraries run in their own link-map namespace with their own copy of
 * libc, so plain open/write/_exit are fine here.  Only async-signal-safe,
 * allocation-free calls are used.
 *
 * Build: gcc -shared -fPIC -O2 -o audit_guard.so audit_guard.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CX_AUDIT_EXIT 97

static int log_fd = -2; /* -2: not opened yet, -1: no log */

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static int get_log_fd(void)
{
    if (log_fd == -2) {
        const char *path = getenv("CX_AUDIT_LOG");
        log_fd = -1;
        if (path != NULL && path[0] != '\0')
            log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0)
            log_fd = -1;
    }
    return log_fd;
}

/* One line per record, assembled first so that O_APPEND writes one line
 * atomically even when several processes share the log.  Very long names
 * are written in pieces. */
static void log_line(const char *kind, const char *name)
{
    int fd = get_log_fd();
    char buf[4096];
    size_t klen = strlen(kind), nlen = strlen(name), pos = 0;

    if (fd < 0)
        return;
    if (klen + 1 + nlen + 1 > sizeof buf) {
        write_all(fd, kind, klen);
        write_all(fd, " ", 1);
        write_all(fd, name, nlen);
        write_all(fd, "\n", 1);
        return;
    }
    memcpy(buf + pos, kind, klen);
    pos += klen;
    buf[pos++] = ' ';
    memcpy(buf + pos, name, nlen);
    pos += nlen;
    buf[pos++] = '\n';
    write_all(fd, buf, pos);
}

static void check_name(const char *kind, const char *name)
{
    static const char msg[] = "cx-audit: dynamic linker asked to open ";

    log_line(kind, name);
    if (strstr(name, ".cosmoext") != NULL) {
        write_all(2, msg, sizeof msg - 1);
        write_all(2, name, strlen(name));
        write_all(2, "\n", 1);
        _exit(CX_AUDIT_EXIT);
    }
}

unsigned int la_version(unsigned int version)
{
    /* Version 0 is reserved/invalid; otherwise speak the highest version
     * both sides know.  Nothing this library uses differs between them. */
    if (version == 0)
        return 0;
    (void)get_log_fd();
    return version < LAV_CURRENT ? version : LAV_CURRENT;
}

char *la_objsearch(const char *name, uintptr_t *cookie, unsigned int flag)
{
    (void)cookie;
    (void)flag;
    if (name != NULL)
        check_name("search", name);
    return (char *)name; /* never redirect or suppress the search */
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
    (void)lmid;
    (void)cookie;
    if (map != NULL && map->l_name != NULL)
        check_name("open", map->l_name);
    return 0; /* no symbol-binding audit requested */
}
