/*
 * cmd_merge.c - `maxsim merge`: the exact global top-k from the runs of
 * `maxsim search --shard I/N`, given in shard order.
 *
 * For batch schedulers without MPI (Slurm job arrays, GNU parallel,
 * Kubernetes jobs): each job searches one shard, and this joins their runs
 * into the bytes the unsharded search writes (runmerge.h says why that is
 * exact). The runs are streamed one query at a time; the output appears
 * whole or not at all (out.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_common.h"
#include "out.h"
#include "runmerge.h"

static const char usage_text[] =
    "usage: maxsim merge [-k <n>] [-o <out>] [--format (trec | tsv)] [--run-tag <tag>]\n"
    "                    <run>...\n"
    "\n"
    "Merge the runs of 'maxsim search --shard I/N' (TREC or TSV, plain or .zst; '-'\n"
    "for stdin), given in shard order 0 to N-1, into the exact top-k of the whole\n"
    "corpus: the bytes the unsharded search writes.\n"
    "\n"
    "  -k <n>                   results per query (default 10)\n"
    "  -o, --output <file>      write here instead of stdout (.trec .tsv, + .zst)\n"
    "  --format <fmt>           trec or tsv (default: that of the runs)\n"
    "  --run-tag <tag>          the TREC run tag (default: the runs' own)\n"
    "  -h, --help               this help\n";

/* Copy the spooled run to standard output: 0 or 1. */
static int copy_to_stdout(const char *path)
{
    char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return ms_fail(MS_ERR_RUNTIME, "cannot read the scratch file '%s': %s", path,
                       strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (fwrite(buf, 1, n, stdout) != n)
            break;
    const int bad = ferror(f);
    fclose(f);
    if (bad)
        return ms_fail(MS_ERR_RUNTIME, "cannot read the scratch file '%s'", path);
    return ms_close_stdout();
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* 1 if the output's name says trec or tsv (.trec, .tsv, either + .zst). */
static int names_format(const char *path)
{
    static const char *const suffixes[] = { ".trec", ".tsv", ".trec.zst", ".tsv.zst" };
    for (size_t i = 0; path && i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(path, suffixes[i]))
            return 1;
    return 0;
}

int cmd_merge(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, OPT_FORMAT },
        { "run-tag", required_argument, NULL, OPT_RUN_TAG },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ms_merge_opts mo = { .k = 10, .fmt = -1, .tag = NULL };
    const char *out_path = NULL, *format = NULL;
    struct ms_wfile *w = NULL;
    struct ms_err err;
    enum ms_fmt fmt;
    int zst, c, rc, stdin_runs = 0;

    while ((c = getopt_long(argc, argv, ":k:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (ms_parse_u64("merge", "-k", optarg, 1, &mo.k))
                return MS_ERR_INPUT;
            break;
        case 'o': out_path = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_RUN_TAG:
            if (ms_parse_run_tag("merge", optarg))
                return MS_ERR_INPUT;
            mo.tag = optarg;
            break;
        case 'h': fputs(usage_text, stdout); return ms_close_stdout();
        case ':': return ms_usage_error("merge", "option '%s' needs a value", argv[optind - 1]);
        default: return ms_usage_error("merge", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ms_usage_error("merge", "no runs to merge (give the shard runs in shard order)");
    for (int i = optind; i < argc; i++)
        stdin_runs += strcmp(argv[i], "-") == 0;
    if (stdin_runs > 1)
        return ms_usage_error("merge", "standard input ('-') can be only one of the runs");
    if (ms_fmt_resolve(out_path, format, &fmt, &zst, &err) != MS_OK)
        return ms_report(&err);
    if (fmt != MS_FMT_TREC && fmt != MS_FMT_TSV)
        return ms_usage_error("merge", "merge writes trec or tsv, not %s", ms_fmt_name(fmt));
    /* --format or a .trec / .tsv suffix decides; else the runs' own format */
    mo.fmt = format || names_format(out_path) ? (int)fmt : -1;
    /* To standard output the merged run is spooled to a scratch file first
     * and copied out only once every line was merged: bad input found late
     * in the runs leaves no partial output there either. */
    const int to_stdout = !out_path || strcmp(out_path, "-") == 0;
    char spool[4096];
    if (to_stdout) {
        const char *dir = getenv("TMPDIR");
        snprintf(spool, sizeof spool, "%s/maxsim-merge-XXXXXX", dir && *dir ? dir : "/tmp");
        const int fd = mkstemp(spool);
        if (fd < 0)
            return ms_fail(MS_ERR_RUNTIME, "cannot create a scratch file in '%s': %s",
                           dir && *dir ? dir : "/tmp", strerror(errno));
        close(fd);
        ms_tmp_register(spool);
    }
    if (ms_wfile_open(&w, to_stdout ? spool : out_path, zst, &err) != MS_OK) {
        rc = ms_report(&err);
        goto done;
    }
    struct ms_merge_stats st;
    rc = ms_runs_merge((const char *const *)argv + optind, argc - optind, &mo, w, &st, &err);
    if (rc == MS_OK) {
        rc = ms_wfile_commit(w, &err);
        w = NULL;
    }
    ms_wfile_abort(w);
    if (rc != MS_OK)
        ms_report(&err);
    else {
        /* the runs hold more than -k a query: likely searched with another -k */
        if (st.most_per_query > mo.k)
            ms_warn("the runs hold up to %llu results a query; merged the best %llu (-k %llu): "
                    "give merge the -k of the search to get the unsharded run",
                    (unsigned long long)st.most_per_query, (unsigned long long)mo.k,
                    (unsigned long long)mo.k);
        if (to_stdout)
            rc = copy_to_stdout(spool);
    }
done:
    if (to_stdout) {
        unlink(spool);
        ms_tmp_forget(spool);
    }
    return rc;
}
