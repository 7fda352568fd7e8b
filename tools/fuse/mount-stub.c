/* mount-stub.c - qcowkit mount when libfuse 3 was not found at build
 * time: the command exists and says why it cannot work. */
#include <string.h>

#include "cli.h"

int cmd_mount(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s %s\n(this qcowkit was built without FUSE: "
                   "mount is not available)\n",
                   CLI_NAME, cli_usage("mount"));
            return 0;
        }
    }
    cli_error("mount: this qcowkit was built without FUSE support "
              "(libfuse3 was not found at build time)");
    return 1;
}
