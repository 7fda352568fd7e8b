/* cli-options.c - the options that many subcommands share. */
#include <getopt.h>

#include "cli.h"

void cli_common_init(struct cli_common *o, const char *cmd)
{
    o->cmd = cmd;
    o->fail = 1;
    o->fmt = NULL;
    o->output = "human";
    o->src_cache = NULL;
    o->force_share = false;
    o->image_opts = false;
    o->quiet = false;
}

int cli_common_option(struct cli_common *o, char **argv, int c)
{
    switch (c) {
    case 'f':
        o->fmt = optarg;
        return CLI_NEXT_OPTION;
    case 'U':
        o->force_share = true;
        return CLI_NEXT_OPTION;
    case 'q':
        o->quiet = true;
        return CLI_NEXT_OPTION;
    case 'T':
        /* The cache mode does not change results, but is checked. */
        if (!cli_cache_mode_valid(optarg)) {
            cli_error("Invalid source cache option: %s", optarg);
            return o->fail;
        }
        o->src_cache = optarg;
        return CLI_NEXT_OPTION;
    case 'h':
        printf("usage: %s %s\n", CLI_NAME, cli_usage(o->cmd));
        return 0;
    case CLI_OPT_OBJECT:
        return cli_object_add(optarg) < 0 ? o->fail : CLI_NEXT_OPTION;
    case CLI_OPT_IMAGE_OPTS:
        o->image_opts = true;
        return CLI_NEXT_OPTION;
    case CLI_OPT_OUTPUT:
        o->output = optarg;
        return CLI_NEXT_OPTION;
    default:
        return cli_bad_option(o->cmd, argv, c);
    }
}
