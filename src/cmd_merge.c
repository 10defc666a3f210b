/*
 * cmd_merge.c - `maxsim merge`: the exact global top-k from the runs of
 * `maxsim search --shard I/N`, given in shard order.
 *
 * For batch schedulers without MPI (Slurm job arrays, GNU parallel,
 * Kubernetes jobs): each job searches one shard, and this joins their runs
 * into the bytes the unsharded search writes (runmerge.h says why that is
 * exact). The runs are streamed one query at a time; the output appears
 * whole or not at all (tempfile.h).
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
#include "tempfile.h"

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
        MS_OUTPUT_LONGOPTS,
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "merge", ":k:o:hv", longopts, usage_text, 1 };
    struct ms_merge_opts mo = { .k = 10, .fmt = -1, .tag = NULL };
    const char *out_path = NULL, *format = NULL;
    struct ms_wfile *w = NULL;
    struct ms_err err;
    enum ms_fmt fmt;
    int zst, c, rc, status, stdin_runs = 0;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
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
        default: break;
        }
    }
    if (status >= 0)
        return status;
    if (optind >= argc)
        return ms_usage_error("merge", "no runs to merge (give the shard runs in shard order)");
    for (int i = optind; i < argc; i++)
        stdin_runs += strcmp(argv[i], "-") == 0;
    if (stdin_runs > 1)
        return ms_usage_error("merge", "standard input ('-') can be only one of the runs");
    if (ms_fmt_resolve(out_path, format, MS_FMT_TEXT, MS_FMT_TREC, &fmt, &zst, &err) != MS_OK)
        return ms_report(&err);
    /* --format or a .trec / .tsv suffix decides; else the runs' own format */
    mo.fmt = format || names_format(out_path) ? (int)fmt : -1;
    /* To standard output the merged run goes through a scratch file, copied
     * out only once every line was merged (tempfile.h): bad input found late
     * in the runs leaves no partial output there either. */
    const int to_stdout = !out_path || strcmp(out_path, "-") == 0;
    if (ms_wfile_open(&w, to_stdout ? "/dev/stdout" : out_path, zst,
                      to_stdout ? MS_TEMPFILE_SEEKABLE : 0, &err) != MS_OK)
        return ms_report(&err);
    struct ms_merge_stats st;
    rc = ms_runs_merge((const char *const *)argv + optind, argc - optind, &mo, w, &st, &err);
    if ((rc = ms_output_finish(&w, rc, &err)) == MS_OK && st.most_per_query > mo.k)
        /* the runs hold more than -k a query: likely searched with another -k */
        ms_warn("the runs hold up to %llu results a query; merged the best %llu (-k %llu): "
                "give merge the -k of the search to get the unsharded run",
                (unsigned long long)st.most_per_query, (unsigned long long)mo.k,
                (unsigned long long)mo.k);
    return rc;
}
