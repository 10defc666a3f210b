/*
 * main.c - global options and the command table.
 *
 * `maxsim [--device SPEC] [-v|--verbose] [-q|--quiet] <command> [options]`.
 * The global options come before the command name (getopt stops there: the
 * optstring starts with '+'), so `maxsim -q search -q Q.npy ...` means quiet,
 * then queries. Each command parses the rest itself (cmd_<name>.c), global
 * options given after its name included (ms_option_tail). Standard output is
 * closed here once the command succeeded.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_mpi.h"
#include "h5.h"
#include "stream.h"
#include "tempfile.h"

#ifndef MS_VERSION
#define MS_VERSION "0.1.0"
#endif

struct ms_global ms_global = { "auto", 0, 0, 0, 0 };

static const struct ms_cmd commands[] = {
    { "search", cmd_search, "exact top-k MaxSim of queries against a corpus" },
    { "score", cmd_score, "the full query x document MaxSim score matrix" },
    { "rerank", cmd_rerank, "rescore the candidates of a run with exact MaxSim" },
    { "plaid", cmd_plaid, "search or rerank with a PLAID (fast-plaid / NextPlaid) index" },
    { "index", cmd_index, "build a PLAID index (fast-plaid layout), or append to one" },
    { "merge", cmd_merge, "merge the runs of search --shard into the global top-k" },
    { "info", cmd_info, "describe embedding files and PLAID index directories" },
    { "devices", cmd_devices, "list OpenCL platforms and devices" },
    { "bench", cmd_bench, "time the kernels on synthetic data of a given shape" },
};

static void usage(FILE *f)
{
    fprintf(
        f, "usage: maxsim [--device <spec>] [-v | --verbose] [-q | --quiet] <command> [<options>]\n"
           "       maxsim <command> --help\n"
           "       maxsim --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nglobal options:\n"
               "  --device <spec>  auto (default), cpu, gpu, or an index from 'maxsim devices';\n"
               "                   all, or a list such as 0,2: search, score and rerank\n"
               "                   spread over them (default from MAXSIM_DEVICE)\n"
               "  -v, --verbose    more detail on stderr (kernel cache, build logs, timings)\n"
               "  -q, --quiet      no progress line and no warnings\n"
               "                   (--device, -v and --quiet may also follow the command;\n"
               "                   there -q means --queries)\n"
               "  -h, --help       this help\n"
               "  --version        print the version\n");
}

/* Seconds from the process's start (exec) to now, from /proc/self/stat's
 * start time (clock ticks since boot, 10 ms steps): what the loader and the
 * libraries' constructors cost before main. -1 where that is unknown. */
static double since_exec(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    struct timespec now;
    unsigned long long start = 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    /* field 22; the name (field 2) may hold spaces: count from its closing ')' */
    const char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &start) != 1 || clock_gettime(CLOCK_BOOTTIME, &now) != 0)
        return -1;
    const long tick = sysconf(_SC_CLK_TCK);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9 - (double)start / (double)tick;
}

/* Interrupted: remove the temporary outputs (no partial file is left), then
 * die of the same signal so the shell sees why. */
static void on_signal(int sig)
{
    ms_tempfile_remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Exit with a GPU context still open (ms_devices_close left it): skip the driver's exit
 * handlers (_exit), and leave the kernel driver's teardown of the context, which runs when
 * the last process holding the device files ends, to a child that holds them until this
 * process has ended (the end of a pipe whose other end only this process holds), then ends
 * too. So this process, whose outputs are complete and closed, does not wait for it: on the
 * H200 the teardown took 0.11-0.14 s of a 2 GB search's 0.51 s, and this process's exit
 * 0.003-0.005 s with such a child (scripts/start-probe.py). The child keeps only character
 * devices (the GPU's files) so that no pipe or file of the caller's stays open behind it, and
 * makes only async-signal-safe calls (the driver's threads may hold locks at the fork). Not
 * under mpirun, whose launchers track the processes they start. */
static void leave_now(int code)
{
    struct rlimit lim;
    int fds[2];

    fflush(NULL);
    const int top =
        getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < 4096 ? (int)lim.rlim_cur : 4096;
    if (ms_mpi_size() <= 1 && pipe(fds) == 0 && fork() == 0) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        struct stat st;
        char c;
        /* on_signal is the parent's: the outputs are in place, nothing is the child's to remove */
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        for (int fd = 0; fd < top; fd++)
            if (fd != fds[0] &&
                (fd <= STDERR_FILENO || (fstat(fd, &st) == 0 && !S_ISCHR(st.st_mode))))
                close(fd);
        while (read(fds[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    _exit(code);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "device", required_argument, NULL, 'D' }, { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },      { NULL, 0, NULL, 0 },
    };
    const char *env = getenv("MAXSIM_DEVICE");
    int c;

    if (env && *env)
        ms_global.device = env;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+vqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': ms_global.device = optarg; break;
        case 'v': ms_global.verbose++; break;
        case 'q': ms_global.quiet = 1; break;
        case 'h': usage(stdout); return ms_close_stdout();
        case 'V': printf("maxsim %s\n", MS_VERSION); return ms_close_stdout();
        default:
            if (optopt == 'D' ||
                (optind > 0 && argv[optind - 1] && strncmp(argv[optind - 1], "--device", 8) == 0))
                return ms_usage_error(NULL, "--device takes a device spec (e.g. --device cpu)");
            return ms_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    ms_h5_set_verbose(ms_global.verbose > 0);
    if (optind >= argc) {
        usage(stderr);
        return MS_ERR_INPUT;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[optind], commands[i].name) == 0) {
            /* Each command scans its own argv with getopt from the start:
             * glibc needs optind = 0 to reinitialize (getopt(3) NOTES). */
            char **sub = argv + optind;
            int subc = argc - optind;
            optind = 0;
            opterr = 0;
            const double t_main = ms_now();
            const int status = ms_mpi_run(commands[i].name, commands[i].run, subc, sub);
            if (ms_global.verbose && ms_global.used_device) {
                /* the process's age is read once, here, not on every start */
                const double in_command = ms_now() - t_main, age = since_exec();
                fprintf(stderr,
                        "maxsim: process: %.3f s from its start to main (loading libraries), "
                        "%.3f s in the command\n",
                        age < 0 ? -1.0 : age - in_command, in_command);
            }
            /* standard output is closed here, once, for every command
             * (git's run_builtin): a failed write (`> /dev/full`) is an error */
            const int code = status == 0 ? ms_close_stdout() : status;
            if (ms_global.exit_now)
                leave_now(code);
            return code;
        }
    }
    if (strcmp(argv[optind], "help") == 0) {
        usage(stdout);
        return ms_close_stdout();
    }
    return ms_usage_error(NULL, "unknown command '%s'", argv[optind]);
}
