/* xlcfg-check: parses an xl config with libxlutil (xl's own parser, no hypervisor needed) and prints key=value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxl.h>
#include <libxlutil.h>

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s XL_CONFIG\n", argv[0]); return 2; }
    XLU_Config *config = xlu_cfg_init(stderr, argv[1]);
    if (!config) { perror("xlu_cfg_init"); return 1; }
    if (xlu_cfg_readfile(config, argv[1])) { fprintf(stderr, "%s: parse error\n", argv[1]); return 1; }
    static const char *strings[] = { "name", "type", "kernel", "on_poweroff", "on_reboot", "on_crash" };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *value;
        if (!xlu_cfg_get_string(config, strings[i], &value, 1)) printf("%s=%s\n", strings[i], value);
    }
    static const char *numbers[] = { "memory", "maxmem", "vcpus" };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        long value;
        if (!xlu_cfg_get_long(config, numbers[i], &value, 1)) printf("%s=%ld\n", numbers[i], value);
    }
    XLU_ConfigList *disks;
    int count = 0;
    if (!xlu_cfg_get_list(config, "disk", &disks, &count, 1)) {
        for (int i = 0; i < count; i++) {
            const char *spec = xlu_cfg_get_listitem(disks, i);
            libxl_device_disk disk;
            libxl_device_disk_init(&disk);
            char *specs[] = { (char *)spec };
            if (xlu_disk_parse(config, 1, (const char **)specs, &disk)) {
                fprintf(stderr, "disk %d: xlu_disk_parse rejects \"%s\"\n", i, spec);
                return 1;
            }
            printf("disk%d.target=%s\ndisk%d.vdev=%s\n", i, disk.pdev_path ? disk.pdev_path : "", i, disk.vdev ? disk.vdev : "");
            libxl_device_disk_dispose(&disk);
        }
    }
    xlu_cfg_destroy(config);
    return 0;
}
