/*
 * devset.c - several OpenCL devices at once (devset.h).
 *
 * A set is checked to be one model on one driver because byte-identical
 * output is the contract whatever the device count: two different devices
 * (or one device under two drivers) may compile the same kernel into code
 * that rounds differently.
 */
#include "devset.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

int ms_devspec_is_multi(const char *spec)
{
    return spec && (strcmp(spec, "all") == 0 || strchr(spec, ','));
}

static int same_model(const struct ms_cl_devinfo *a, const struct ms_cl_devinfo *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->driver_version, b->driver_version) == 0 &&
           strcmp(a->platform_name, b->platform_name) == 0;
}

/* The type "auto" picks: GPU if there is one, else CPU, else whatever there is. */
static cl_device_type auto_type(const struct ms_cl_devinfo *list, int n)
{
    for (int i = 0; i < n; i++)
        if (list[i].type & CL_DEVICE_TYPE_GPU)
            return CL_DEVICE_TYPE_GPU;
    for (int i = 0; i < n; i++)
        if (list[i].type & CL_DEVICE_TYPE_CPU)
            return CL_DEVICE_TYPE_CPU;
    return CL_DEVICE_TYPE_ALL;
}

/* Every device of the type; returns how many. */
static int of_type(const struct ms_cl_devinfo *list, int n, cl_device_type type, int *idx)
{
    int k = 0;
    for (int i = 0; i < n && k < MS_MAX_DEVICES; i++)
        if (list[i].type & type)
            idx[k++] = i;
    return k;
}

/* The items of a comma-separated list of device indices. */
static int pick_list(const struct ms_cl_devinfo *list, int n, const char *spec, int *idx,
                     int *n_idx, struct ms_err *err)
{
    const char *p = spec;
    int k = 0;

    for (;;) {
        const size_t len = strcspn(p, ",");
        char item[16];
        if (len == 0 || len >= sizeof item || strspn(p, "0123456789") != len)
            return ms_err_set(err, MS_ERR_INPUT,
                              "bad device list '%s': expected device indices from 'maxsim "
                              "devices' separated by commas (e.g. 0,2), found '%.*s'",
                              spec, (int)(len < 16 ? len : 16), p);
        memcpy(item, p, len);
        item[len] = '\0';
        const int i = ms_cl_pick(list, n, item, err);
        if (i < 0)
            return err->status;
        if (k == MS_MAX_DEVICES)
            return ms_err_set(err, MS_ERR_INPUT, "bad device list '%s': more than %d devices", spec,
                              MS_MAX_DEVICES);
        idx[k++] = i;
        p += len;
        if (!*p)
            break;
        p++;
    }
    *n_idx = k;
    return MS_OK;
}

int ms_devset_pick(const struct ms_cl_devinfo *list, int n, const char *spec, int nth, int *idx,
                   int *n_idx, struct ms_err *err)
{
    int rc;

    if (!spec || !*spec)
        spec = "auto";
    *n_idx = 0;
    if (n == 0) /* ms_cl_pick words the "no platform" error */
        return ms_cl_pick(list, n, spec, err) < 0 ? err->status : MS_ERR_RUNTIME;
    if (strcmp(spec, "all") == 0) {
        *n_idx = of_type(list, n, auto_type(list, n), idx);
    } else if (strchr(spec, ',')) {
        if ((rc = pick_list(list, n, spec, idx, n_idx, err)) != MS_OK)
            return rc;
    } else if (nth >= 0 && (strcmp(spec, "auto") == 0 || strcmp(spec, "gpu") == 0 ||
                            strcmp(spec, "cpu") == 0)) {
        /* one device of the type, chosen by the rank; ms_cl_pick words the errors */
        const int first = ms_cl_pick(list, n, spec, err);
        if (first < 0)
            return err->status;
        const cl_device_type type = strcmp(spec, "auto") == 0 ? auto_type(list, n)
                                    : spec[0] == 'g'          ? CL_DEVICE_TYPE_GPU
                                                              : CL_DEVICE_TYPE_CPU;
        int all[MS_MAX_DEVICES];
        const int k = of_type(list, n, type, all);
        idx[0] = k ? all[nth % k] : first;
        *n_idx = 1;
    } else {
        const int i = ms_cl_pick(list, n, spec, err);
        if (i < 0)
            return err->status;
        idx[0] = i;
        *n_idx = 1;
    }
    for (int j = 1; j < *n_idx; j++)
        if (!same_model(&list[idx[0]], &list[idx[j]]))
            return ms_err_set(err, MS_ERR_INPUT,
                              "devices %d ('%s', driver %s) and %d ('%s', driver %s) differ: "
                              "scores could differ in the last bit from one to the other; "
                              "list devices of one model (e.g. --device %d,...)",
                              list[idx[0]].index, list[idx[0]].name, list[idx[0]].driver_version,
                              list[idx[j]].index, list[idx[j]].name, list[idx[j]].driver_version,
                              list[idx[0]].index);
    return MS_OK;
}

int ms_devset_open(struct ms_devset *s, const char *spec, int nth, struct ms_err *err)
{
    struct ms_cl_devinfo *list = NULL;
    int idx[MS_MAX_DEVICES], n = 0, n_idx = 0, rc;

    memset(s, 0, sizeof *s);
    if ((rc = ms_cl_list(&list, &n, err)) != MS_OK)
        return rc;
    rc = ms_devset_pick(list, n, spec, nth, idx, &n_idx, err);
    for (int j = 0; j < n_idx; j++)
        idx[j] = list[idx[j]].index; /* the spec ms_cl_open takes */
    free(list);
    if (rc != MS_OK)
        return rc;
    if (!(s->cl = ms_calloc((size_t)n_idx, sizeof *s->cl, err)))
        return err->status;
    for (int j = 0; j < n_idx; j++) {
        char one[16];
        snprintf(one, sizeof one, "%d", idx[j]);
        if ((rc = ms_cl_open(&s->cl[j], one, err)) != MS_OK) {
            ms_devset_close(s);
            return rc;
        }
        s->n = j + 1;
    }
    return MS_OK;
}

void ms_devset_close(struct ms_devset *s)
{
    for (int j = 0; j < s->n; j++)
        ms_cl_close(&s->cl[j]);
    free(s->cl);
    memset(s, 0, sizeof *s);
}

/* Open st->set as the caller asked, timing it. */
static void *open_set(void *arg)
{
    struct ms_devset_start *st = arg;
    stack_t own;
    const int have_own = sigaltstack(NULL, &own) == 0;

    st->begin_s = ms_now();
    if (!st->single) {
        st->rc = ms_devset_open(&st->set, st->spec, st->nth, &st->err);
    } else if ((st->set.cl = ms_calloc(1, sizeof *st->set.cl, &st->err)) == NULL) {
        st->rc = st->err.status;
    } else if ((st->rc = ms_cl_open(st->set.cl, st->spec, &st->err)) != MS_OK) {
        free(st->set.cl);
        st->set.cl = NULL;
    } else {
        st->set.n = 1;
    }
    st->end_s = ms_now();
    /* LLVM, which PoCL starts in the thread that first opens it, installs an alternate signal
     * stack of its own there; the thread's own goes back, so that its exit frees what it
     * made (AddressSanitizer's exit aborts on the stack it does not recognise). */
    stack_t now;
    if (have_own && sigaltstack(NULL, &now) == 0 && now.ss_sp != own.ss_sp)
        sigaltstack(&own, NULL);
    return NULL;
}

void ms_devset_start(struct ms_devset_start *st, const char *spec, int nth, int single)
{
    memset(st, 0, sizeof *st);
    st->spec = spec;
    st->nth = nth;
    st->single = single;
    st->started = pthread_create(&st->thread, NULL, open_set, st) == 0;
}

int ms_devset_finish(struct ms_devset_start *st, struct ms_devset *out, struct ms_err *err)
{
    if (st->started) {
        pthread_join(st->thread, NULL);
        st->started = 0;
    } else {
        open_set(st);
    }
    *out = st->set;
    memset(&st->set, 0, sizeof st->set);
    if (st->rc != MS_OK)
        *err = st->err;
    return st->rc;
}

void ms_devset_cancel(struct ms_devset_start *st)
{
    if (st->started) {
        pthread_join(st->thread, NULL);
        st->started = 0;
    }
    ms_devset_close(&st->set);
}
