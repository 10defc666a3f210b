/*
 * cmd.h - the subcommands, one file each (cmd_<name>.c), and the few helpers
 * they share for options, messages and exit statuses.
 *
 * Only main.c and the cmd_*.c files print or exit. A command returns its exit
 * status: 0 success, 1 runtime failure, 2 usage error or invalid input.
 */
#ifndef MS_CMD_H
#define MS_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* Global options, parsed by main.c before the command name. */
struct ms_global {
    const char *device; /* --device or $MAXSIM_DEVICE, "auto" by default */
    int verbose;        /* -v */
    int quiet;          /* -q: no progress line, no warnings */
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
int cmd_merge(int argc, char **argv);
/* `maxsim info` on index directories (cmd_plaid.c). */
int cmd_plaid_info(char **dirs, int n, int json);

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

/* Flush and close stdout, reporting a write error (e.g. `> /dev/full`): 0 or 1. */
int ms_close_stdout(void);

#endif
