/* fuse_glue.c: libfuse3's high-level operations mapped onto xsfuse_operations (xsctl mount). */
#include "fuse_glue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fuse3/fuse.h>

static const xsfuse_operations *ops;

/* A growable buffer for the read callback. */
struct buffer {
    uint8_t *bytes;
    size_t length;
    size_t capacity;
    int failed;
};

static void buffer_put(void *sink, const uint8_t *data, size_t length) {
    struct buffer *b = sink;
    if (b->failed || length == 0) return;
    if (b->length + length > b->capacity) {
        size_t wanted = b->capacity ? b->capacity * 2 : 4096;
        while (wanted < b->length + length) wanted *= 2;
        uint8_t *grown = realloc(b->bytes, wanted);
        if (!grown) { b->failed = 1; return; }
        b->bytes = grown;
        b->capacity = wanted;
    }
    memcpy(b->bytes + b->length, data, length);
    b->length += length;
}

static int glue_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
    (void)fi;
    int is_directory = 0, writable = 0;
    uint64_t size = 0;
    int rc = ops->getattr(path, &is_directory, &size, &writable);
    if (rc != 0) return rc;
    memset(st, 0, sizeof(*st));
    st->st_uid = getuid();
    st->st_gid = getgid();
    if (is_directory) {
        st->st_mode = S_IFDIR | (writable ? 0755 : 0555);
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | (writable ? 0644 : 0444);
        st->st_nlink = 1;
        st->st_size = (off_t)size;
    }
    return 0;
}

struct names {
    void *buf;
    fuse_fill_dir_t filler;
};

static void names_add(void *sink, const char *name) {
    struct names *n = sink;
    n->filler(n->buf, name, NULL, 0, 0);
}

static int glue_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                        struct fuse_file_info *fi, enum fuse_readdir_flags flags) {
    (void)offset; (void)fi; (void)flags;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    struct names n = { buf, filler };
    return ops->readdir(path, &n, names_add);
}

/* One open file: while an O_TRUNC open has not written yet, the truncation is pending; the
 * first write then replaces the content (so `echo x > value` is one WRITE, one commit, one
 * watch event) and, if nothing is written, release makes it. libfuse keeps only fi->fh from
 * open, so the state lives here, pointed to by it. */
struct open_file {
    int truncate_pending;
};

static struct open_file *state_of(struct fuse_file_info *fi) {
    return fi ? (struct open_file *)(uintptr_t)fi->fh : NULL;
}

static int glue_open(const char *path, struct fuse_file_info *fi) {
    (void)path;
    struct open_file *file = calloc(1, sizeof(*file));
    if (!file) return -ENOMEM;
    file->truncate_pending = (fi->flags & O_ACCMODE) != O_RDONLY && (fi->flags & O_TRUNC);
    fi->fh = (uint64_t)(uintptr_t)file;
    fi->direct_io = 1;  /* sizes come from the store at each read, not from a cached stat */
    return 0;
}

static int glue_release(const char *path, struct fuse_file_info *fi) {
    struct open_file *file = state_of(fi);
    int rc = 0;
    if (file && file->truncate_pending) rc = ops->truncate(path, 0);
    free(file);
    return rc;
}

static int glue_read(const char *path, char *out, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)fi;
    struct buffer b = { 0 };
    int rc = ops->read(path, &b, buffer_put);
    if (rc == 0 && b.failed) rc = -ENOMEM;
    if (rc != 0) { free(b.bytes); return rc; }
    size_t start = offset < 0 ? 0 : (size_t)offset;
    size_t count = start >= b.length ? 0 : b.length - start;
    if (count > size) count = size;
    if (count) memcpy(out, b.bytes + start, count);
    free(b.bytes);
    return (int)count;
}

static int glue_write(const char *path, const char *data, size_t size, off_t offset, struct fuse_file_info *fi) {
    struct open_file *file = state_of(fi);
    int fresh = file && file->truncate_pending;
    int rc = ops->write(path, (const uint8_t *)data, size, offset < 0 ? 0 : (uint64_t)offset, fresh);
    if (rc != 0) return rc;
    if (file) file->truncate_pending = 0;
    return (int)size;
}

static int glue_truncate(const char *path, off_t length, struct fuse_file_info *fi) {
    struct open_file *file = state_of(fi);
    if (file && file->truncate_pending && length <= 0) return 0;  /* already pending */
    return ops->truncate(path, length < 0 ? 0 : (uint64_t)length);
}

static int glue_mkdir(const char *path, mode_t mode) {
    (void)mode;
    return ops->mkdir(path);
}

static int glue_rmdir(const char *path) { return ops->rmdir(path); }

/* Files are only a node's value and perms: no other file can be created. */
static int glue_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
    (void)mode;
    int is_directory = 0, writable = 0;
    uint64_t size = 0;
    int rc = ops->getattr(path, &is_directory, &size, &writable);
    if (rc != 0) return rc == -ENOENT ? -EPERM : rc;
    if (is_directory) return -EISDIR;
    return glue_open(path, fi);
}

/* value and perms exist as long as their node: unlinking one changes nothing (so that `rm -r`
 * reaches the rmdir that removes the node); anything else is not there. */
static int glue_unlink(const char *path) {
    int is_directory = 0, writable = 0;
    uint64_t size = 0;
    int rc = ops->getattr(path, &is_directory, &size, &writable);
    if (rc != 0) return rc;
    if (is_directory) return -EISDIR;
    return writable ? 0 : -EROFS;
}

static int glue_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi) {
    (void)path; (void)tv; (void)fi;
    return 0;  /* nodes keep no times; accepted so that `touch` of value works */
}

static void *glue_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    (void)conn;
    cfg->direct_io = 1;
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    return NULL;
}

int xsfuse_main(int argc, char **argv, const xsfuse_operations *operations) {
    static struct fuse_operations table;
    ops = operations;
    memset(&table, 0, sizeof(table));
    table.init = glue_init;
    table.getattr = glue_getattr;
    table.readdir = glue_readdir;
    table.open = glue_open;
    table.read = glue_read;
    table.write = glue_write;
    table.truncate = glue_truncate;
    table.release = glue_release;
    table.mkdir = glue_mkdir;
    table.rmdir = glue_rmdir;
    table.create = glue_create;
    table.unlink = glue_unlink;
    table.utimens = glue_utimens;
    return fuse_main(argc, argv, &table, NULL);
}
