/*  cli/cmd_reply.c - placeholder while the dialogue model is written. */
#include "cli.h"

int st_cmd_reply(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("reply", "not yet");
}

int st_cmd_lm_eval_reply(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("lm eval-reply", "not yet");
}

int st_cmd_lm_dialogue(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("lm dialogue", "not yet");
}
