/* fuse_glue.h: the narrow interface between libfuse3 and xsctl's mount: path-level callbacks, no FUSE types. */
#ifndef XS_FUSE_GLUE_H
#define XS_FUSE_GLUE_H

#include <stddef.h>
#include <stdint.h>

/* Receives bytes for the read callback, in pieces (the glue keeps them). */
typedef void (*xsfuse_sink)(void *sink, const uint8_t *data, size_t length);
/* Receives one name for the readdir callback. */
typedef void (*xsfuse_name_sink)(void *sink, const char *name);

/* What the file system does, by path (absolute, as FUSE gives it). Each returns 0 or -errno. */
typedef struct {
    /* *is_directory: 1 directory, 0 file; *size: bytes of a file; *writable: 1 if it may be changed. */
    int (*getattr)(const char *path, int *is_directory, uint64_t *size, int *writable);
    /* Calls add(sink, name) for each entry ("." and ".." are added by the glue). */
    int (*readdir)(const char *path, void *sink, xsfuse_name_sink add);
    /* The whole content of a file, given to put(sink, ...). */
    int (*read)(const char *path, void *sink, xsfuse_sink put);
    /* Replaces the file's content by its first `offset` bytes followed by `data`; with `fresh`,
     * the content before counts as empty (the file was opened with O_TRUNC). */
    int (*write)(const char *path, const uint8_t *data, size_t length, uint64_t offset, int fresh);
    /* Cuts or pads (with NULs) the file's content to `length` bytes. */
    int (*truncate)(const char *path, uint64_t length);
    int (*mkdir)(const char *path);
    int (*rmdir)(const char *path);
} xsfuse_operations;

/* Runs FUSE with `argv` (libfuse's own options: the mount point, -f, -s, -o ...) until the file
 * system is unmounted; returns fuse_main's status (0 after a clean unmount). The callbacks are
 * called from one thread at a time when -s is given. */
int xsfuse_main(int argc, char **argv, const xsfuse_operations *operations);

#endif
