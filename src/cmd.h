/*
 * cmd.h - the subcommands, one file each (cmd_<name>.c), and the few helpers
 * they share for options, messages and exit statuses.
 *
 * Only main.c and the cmd_*.c files print or exit. A command returns its exit
 * status: 0 success, 1 runtime failure, 2 usage error or invalid input.
 */
#ifndef MS_CMD_H
#define MS_CMD_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* Global options, parsed by main.c before the command name. */
struct ms_global {
    const char *device; /* --device or $MAXSIM_DEVICE, "auto" by default */
    int verbose;        /* -v */
    int quiet;          /* -q: no progress line, no warnings */
    int exit_now;       /* devices were left to the exit: main ends with _exit (ms_devices_close) */
    int used_device;    /* a command opened a device: -v times the process (main.c) */
};
extern struct ms_global ms_global;

struct ms_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

int cmd_search(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_rerank(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_plaid(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_merge(int argc, char **argv);

/* The global options, accepted after the command name too (`maxsim search
 * ... -v`), and --help: entries for a command's `struct option` table, and
 * 'v' and 'h' go in its optstring. There -q means --queries, so quiet is --quiet alone. */
enum { OPT_GLOBAL_DEVICE = 4000, OPT_GLOBAL_QUIET };
#define MS_GLOBAL_LONGOPTS                                                                         \
    { "device", required_argument, NULL, OPT_GLOBAL_DEVICE },                                      \
        { "verbose", no_argument, NULL, 'v' }, { "quiet", no_argument, NULL, OPT_GLOBAL_QUIET },   \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* How a command parses its options (ms_getopt). */
struct ms_optspec {
    const char *cmd;               /* "search", for messages */
    const char *optstring;         /* getopt's, starting with ':' */
    const struct option *longopts; /* ending in MS_GLOBAL_LONGOPTS and a NULL entry */
    const char *help_text;         /* printed by -h / --help */
    int operands;                  /* 1: arguments after the options are allowed */
};

/* getopt_long for commands, with what every command shares: global options
 * after the command, -h, a missing value, an unknown option, unexpected
 * operands. Returns the next option for the command's own switch, or 0 when
 * parsing is over; then *status is -1 to go on, or the exit status to return
 * (0 after --help: main.c closes standard output). */
int ms_getopt(const struct ms_optspec *spec, int argc, char **argv, int *status);

/* Print "maxsim: error: MSG" and return err->status. */
int ms_report(const struct ms_err *err);
/* Print "maxsim: error: FMT..." and return `status`. */
int ms_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "maxsim: warning: FMT..." unless -q. */
void ms_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: "maxsim CMD: MSG" then "Try 'maxsim CMD --help'.", status 2. */
int ms_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse option values; on failure print a usage error naming the option and
 * return 2 (else 0). */
int ms_parse_u64(const char *cmd, const char *opt, const char *arg, uint64_t min, uint64_t *out);

/* Flush and close stdout, reporting a write error (e.g. `> /dev/full`): 0 or
 * 1. main.c calls it once a command succeeded (git's run_builtin); a second
 * call does nothing. */
int ms_close_stdout(void);

#endif
