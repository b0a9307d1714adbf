/* C facilities of the host shell not exposed by Glibc's Swift overlay: zlib (git objects) and syncfs. */
#include <zlib.h>
int syncfs(int fd);
