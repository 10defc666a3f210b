/*
 * cmd_devices.c - `maxsim devices`: list every OpenCL platform and device,
 * marking with '*' the one `--device` (default auto) picks (every one, for
 * a spec of several such as "all"), the way
 * `clinfo -l` lists them but with what maxsim cares about: type, memory,
 * the largest buffer, the OpenCL C version and the driver.
 *
 * With --json, one JSON object for scripts. No OpenCL platform at all is an
 * error (exit 1) with a hint to install a driver, not an empty list: every
 * other command would fail anyway.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_dev.h"
#include "cmd.h"
#include "devset.h"

static const char usage_text[] =
    "usage: maxsim devices [--json]\n\n"
    "List OpenCL platforms and devices; '*' marks the one --device picks\n"
    "(default: auto, the first GPU, else the first CPU).\n\n"
    "options:\n"
    "  --json      one JSON object instead of text\n"
    "  -h, --help  this help\n";

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static double mib(cl_ulong bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* 1 if list[i] is one of the picked devices. */
static int is_picked(int i, const int *picked, int n_picked)
{
    for (int j = 0; j < n_picked; j++)
        if (picked[j] == i)
            return 1;
    return 0;
}

static void print_text(const struct ms_cl_devinfo *list, int n, const int *picked, int n_picked)
{
    const char *platform = NULL;

    for (int i = 0; i < n; i++) {
        const struct ms_cl_devinfo *d = &list[i];
        if (!platform || strcmp(platform, d->platform_name) != 0) {
            printf("platform: %s (%s)\n", d->platform_name, d->platform_version);
            platform = d->platform_name;
        }
        printf("%c %d  %-4s %s: %s\n", is_picked(i, picked, n_picked) ? '*' : ' ', d->index,
               ms_cl_type_name(d->type), d->vendor, d->name);
        printf("       %u compute units, %.0f MiB global, %.0f KiB local, %.0f MiB max buffer\n",
               d->compute_units, mib(d->global_mem), (double)d->local_mem / 1024.0,
               mib(d->max_alloc));
        printf("       %s, driver %s", d->c_version, d->driver_version);
        if (d->nv_cc_major)
            printf(", compute capability %d.%d", d->nv_cc_major, d->nv_cc_minor);
        putchar('\n');
    }
}

static void print_json(const struct ms_cl_devinfo *list, int n, const int *picked, int n_picked)
{
    /* "picked": the first (or only) device, -1 for a bad spec; "picked_all": every one */
    printf("{\"picked\": %d, \"picked_all\": [", n_picked ? list[picked[0]].index : -1);
    for (int j = 0; j < n_picked; j++)
        printf("%s%d", j ? ", " : "", list[picked[j]].index);
    printf("], \"devices\": [");
    for (int i = 0; i < n; i++) {
        const struct ms_cl_devinfo *d = &list[i];
        printf("%s\n  {\"index\": %d, \"type\": \"%s\", \"platform\": ", i ? "," : "", d->index,
               ms_cl_type_name(d->type));
        json_str(d->platform_name);
        printf(", \"platform_version\": ");
        json_str(d->platform_version);
        printf(", \"vendor\": ");
        json_str(d->vendor);
        printf(", \"name\": ");
        json_str(d->name);
        printf(", \"compute_units\": %u, \"global_mem\": %llu, \"local_mem\": %llu, "
               "\"max_alloc\": %llu, \"opencl_c_version\": ",
               d->compute_units, (unsigned long long)d->global_mem,
               (unsigned long long)d->local_mem, (unsigned long long)d->max_alloc);
        json_str(d->c_version);
        printf(", \"driver_version\": ");
        json_str(d->driver_version);
        if (d->nv_cc_major)
            printf(", \"compute_capability\": \"%d.%d\"", d->nv_cc_major, d->nv_cc_minor);
        printf("}");
    }
    printf("%s]}\n", n ? "\n" : "");
}

int cmd_devices(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "devices", ":hv", longopts, usage_text, 0 };
    struct ms_cl_devinfo *list = NULL;
    struct ms_err err = { 0 };
    int n = 0, json = 0, picked[MS_MAX_DEVICES], n_picked = 0, c, status;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
        switch (c) {
        case 'j': json = 1; break;
        default: break;
        }
    }
    if (status >= 0)
        return status;
    if (ms_cl_list(&list, &n, &err) != MS_OK)
        return ms_report(&err);
    if (n == 0) { /* the one message for no platform, with its likely cause */
        ms_cl_pick(list, 0, ms_global.device, &err);
        return ms_report(&err);
    }
    /* A bad --device still lists the devices (that is how one finds a good
     * one), then reports the spec error. */
    const int bad = ms_devset_pick(list, n, ms_global.device, -1, picked, &n_picked, &err);
    if (bad)
        n_picked = 0;
    if (json)
        print_json(list, n, picked, n_picked);
    else
        print_text(list, n, picked, n_picked);
    free(list);
    if (bad)
        return ms_report(&err);
    return MS_OK;
}
