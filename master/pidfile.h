/* pidfile: the master's pid file, written at start and removed at a clean stop. */
#ifndef PRESENCED_PIDFILE_H
#define PRESENCED_PIDFILE_H

/* Writes our pid; fails when a running presenced holds the file (its lock). Returns the
 * descriptor to keep open, or -1. */
int pidfile_write(const char *path);
void pidfile_remove(const char *path, int fd);

#endif
