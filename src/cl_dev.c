/*
 * cl_dev.c - OpenCL devices: list every device of every platform, pick one
 * from a --device spec, open a context and queue on it, and name OpenCL
 * error codes.
 *
 * The device index is global over platforms, in the order the ICD loader
 * returns them, so `maxsim devices` and `--device N` agree. A machine with no
 * OpenCL platform is not an error here (the loader says
 * CL_PLATFORM_NOT_FOUND_KHR): the list is empty and the command decides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cl_dev.h"

#define MS_CL_PLATFORM_NOT_FOUND_KHR (-1001)
/* cl_nv_device_attribute_query (cl_ext.h values, spelled here so that no
 * vendor header is needed). */
#define MS_CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV 0x4000
#define MS_CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV 0x4001

const char *ms_cl_strerror(cl_int code)
{
    static const struct {
        cl_int code;
        const char *name;
    } names[] = {
        { 0, "CL_SUCCESS" },
        { -1, "CL_DEVICE_NOT_FOUND" },
        { -2, "CL_DEVICE_NOT_AVAILABLE" },
        { -3, "CL_COMPILER_NOT_AVAILABLE" },
        { -4, "CL_MEM_OBJECT_ALLOCATION_FAILURE" },
        { -5, "CL_OUT_OF_RESOURCES" },
        { -6, "CL_OUT_OF_HOST_MEMORY" },
        { -7, "CL_PROFILING_INFO_NOT_AVAILABLE" },
        { -8, "CL_MEM_COPY_OVERLAP" },
        { -9, "CL_IMAGE_FORMAT_MISMATCH" },
        { -10, "CL_IMAGE_FORMAT_NOT_SUPPORTED" },
        { -11, "CL_BUILD_PROGRAM_FAILURE" },
        { -12, "CL_MAP_FAILURE" },
        { -13, "CL_MISALIGNED_SUB_BUFFER_OFFSET" },
        { -14, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST" },
        { -15, "CL_COMPILE_PROGRAM_FAILURE" },
        { -16, "CL_LINKER_NOT_AVAILABLE" },
        { -17, "CL_LINK_PROGRAM_FAILURE" },
        { -18, "CL_DEVICE_PARTITION_FAILED" },
        { -19, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE" },
        { -30, "CL_INVALID_VALUE" },
        { -31, "CL_INVALID_DEVICE_TYPE" },
        { -32, "CL_INVALID_PLATFORM" },
        { -33, "CL_INVALID_DEVICE" },
        { -34, "CL_INVALID_CONTEXT" },
        { -35, "CL_INVALID_QUEUE_PROPERTIES" },
        { -36, "CL_INVALID_COMMAND_QUEUE" },
        { -37, "CL_INVALID_HOST_PTR" },
        { -38, "CL_INVALID_MEM_OBJECT" },
        { -39, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR" },
        { -40, "CL_INVALID_IMAGE_SIZE" },
        { -41, "CL_INVALID_SAMPLER" },
        { -42, "CL_INVALID_BINARY" },
        { -43, "CL_INVALID_BUILD_OPTIONS" },
        { -44, "CL_INVALID_PROGRAM" },
        { -45, "CL_INVALID_PROGRAM_EXECUTABLE" },
        { -46, "CL_INVALID_KERNEL_NAME" },
        { -47, "CL_INVALID_KERNEL_DEFINITION" },
        { -48, "CL_INVALID_KERNEL" },
        { -49, "CL_INVALID_ARG_INDEX" },
        { -50, "CL_INVALID_ARG_VALUE" },
        { -51, "CL_INVALID_ARG_SIZE" },
        { -52, "CL_INVALID_KERNEL_ARGS" },
        { -53, "CL_INVALID_WORK_DIMENSION" },
        { -54, "CL_INVALID_WORK_GROUP_SIZE" },
        { -55, "CL_INVALID_WORK_ITEM_SIZE" },
        { -56, "CL_INVALID_GLOBAL_OFFSET" },
        { -57, "CL_INVALID_EVENT_WAIT_LIST" },
        { -58, "CL_INVALID_EVENT" },
        { -59, "CL_INVALID_OPERATION" },
        { -60, "CL_INVALID_GL_OBJECT" },
        { -61, "CL_INVALID_BUFFER_SIZE" },
        { -62, "CL_INVALID_MIP_LEVEL" },
        { -63, "CL_INVALID_GLOBAL_WORK_SIZE" },
        { -64, "CL_INVALID_PROPERTY" },
        { -65, "CL_INVALID_IMAGE_DESCRIPTOR" },
        { -66, "CL_INVALID_COMPILER_OPTIONS" },
        { -67, "CL_INVALID_LINKER_OPTIONS" },
        { -68, "CL_INVALID_DEVICE_PARTITION_COUNT" },
        { -69, "CL_INVALID_PIPE_SIZE" },
        { -70, "CL_INVALID_DEVICE_QUEUE" },
        { -71, "CL_INVALID_SPEC_ID" },
        { -72, "CL_MAX_SIZE_RESTRICTION_EXCEEDED" },
        { -1000, "CL_INVALID_GL_SHAREGROUP_REFERENCE_KHR" },
        { -1001, "CL_PLATFORM_NOT_FOUND_KHR" },
        { -1002, "CL_INVALID_D3D10_DEVICE_KHR" },
        { -1003, "CL_INVALID_D3D10_RESOURCE_KHR" },
        { -1004, "CL_D3D10_RESOURCE_ALREADY_ACQUIRED_KHR" },
        { -1005, "CL_D3D10_RESOURCE_NOT_ACQUIRED_KHR" },
        { -1057, "CL_DEVICE_PARTITION_FAILED_EXT" },
        { -1058, "CL_INVALID_PARTITION_COUNT_EXT" },
        { -1059, "CL_INVALID_PARTITION_NAME_EXT" },
        { -1092, "CL_EGL_RESOURCE_NOT_ACQUIRED_KHR" },
        { -1093, "CL_INVALID_EGL_OBJECT_KHR" },
        { -1094, "CL_INVALID_ACCELERATOR_INTEL" },
        { -1095, "CL_INVALID_ACCELERATOR_TYPE_INTEL" },
        { -1096, "CL_INVALID_ACCELERATOR_DESCRIPTOR_INTEL" },
        { -1097, "CL_ACCELERATOR_TYPE_NOT_SUPPORTED_INTEL" },
        { -1098, "CL_INVALID_VA_API_MEDIA_ADAPTER_INTEL" },
        { -1099, "CL_INVALID_VA_API_MEDIA_SURFACE_INTEL" },
        { -1100, "CL_VA_API_MEDIA_SURFACE_ALREADY_ACQUIRED_INTEL" },
        { -1101, "CL_VA_API_MEDIA_SURFACE_NOT_ACQUIRED_INTEL" },
        { -1143, "CL_INVALID_COMMAND_BUFFER_KHR" },
        { -1144, "CL_INVALID_SYNC_POINT_WAIT_LIST_KHR" },
        { -1145, "CL_INCOMPATIBLE_COMMAND_QUEUE_KHR" },
    };
    /* Unknown codes are formatted into a small ring of buffers so that two
     * calls in one message do not overwrite each other. */
    static _Thread_local char buf[4][64];
    static _Thread_local int slot;
    char *b;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].code == code) {
            b = buf[slot++ % 4];
            snprintf(b, 64, "%s (%d)", names[i].name, (int)code);
            return b;
        }
    }
    b = buf[slot++ % 4];
    snprintf(b, 64, "unknown OpenCL error (%d)", (int)code);
    return b;
}

const char *ms_cl_type_name(cl_device_type type)
{
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "ACCELERATOR";
    if (type & CL_DEVICE_TYPE_CUSTOM)
        return "CUSTOM";
    return "OTHER";
}

/* Strings that a driver fails to report read as empty rather than failing
 * the whole listing: `maxsim devices` should show what it can. */
static void dev_str(cl_device_id d, cl_device_info what, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(d, what, cap, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[cap - 1] = '\0';
}

static void plat_str(cl_platform_id p, cl_platform_info what, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (clGetPlatformInfo(p, what, cap, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[cap - 1] = '\0';
}

int ms_cl_has_extension(cl_device_id d, const char *ext)
{
    size_t len = 0, n = strlen(ext);
    char *all;
    int found = 0;

    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &len) != CL_SUCCESS || len == 0)
        return 0;
    all = malloc(len + 1);
    if (!all)
        return 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, len, all, NULL) == CL_SUCCESS) {
        all[len] = '\0';
        /* Match whole space-separated words only. */
        for (const char *p = all; (p = strstr(p, ext)) != NULL; p += n) {
            if ((p == all || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
                found = 1;
                break;
            }
        }
    }
    free(all);
    return found;
}

static void fill_info(struct ms_cl_devinfo *di, cl_platform_id p, cl_device_id d, int index)
{
    memset(di, 0, sizeof *di);
    di->index = index;
    di->platform = p;
    di->device = d;
    plat_str(p, CL_PLATFORM_NAME, di->platform_name, sizeof di->platform_name);
    plat_str(p, CL_PLATFORM_VERSION, di->platform_version, sizeof di->platform_version);
    dev_str(d, CL_DEVICE_NAME, di->name, sizeof di->name);
    dev_str(d, CL_DEVICE_VENDOR, di->vendor, sizeof di->vendor);
    dev_str(d, CL_DEVICE_VERSION, di->version, sizeof di->version);
    dev_str(d, CL_DRIVER_VERSION, di->driver_version, sizeof di->driver_version);
    dev_str(d, CL_DEVICE_OPENCL_C_VERSION, di->c_version, sizeof di->c_version);
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof di->type, &di->type, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof di->compute_units, &di->compute_units,
                    NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof di->global_mem, &di->global_mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof di->local_mem, &di->local_mem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof di->max_alloc, &di->max_alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof di->max_work_group,
                    &di->max_work_group, NULL);
    di->is_nvidia = strstr(di->vendor, "NVIDIA") != NULL || strstr(di->platform_name, "NVIDIA");
    if (ms_cl_has_extension(d, "cl_nv_device_attribute_query")) {
        cl_uint v = 0;
        if (clGetDeviceInfo(d, MS_CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, sizeof v, &v, NULL) ==
            CL_SUCCESS)
            di->nv_cc_major = (int)v;
        v = 0;
        if (clGetDeviceInfo(d, MS_CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV, sizeof v, &v, NULL) ==
            CL_SUCCESS)
            di->nv_cc_minor = (int)v;
    }
}

int ms_cl_list(struct ms_cl_devinfo **list, int *n, struct ms_err *err)
{
    cl_uint np = 0;
    cl_platform_id *plats = NULL;
    struct ms_cl_devinfo *out = NULL;
    int count = 0, cap = 0;
    cl_int rc;

    *list = NULL;
    *n = 0;
    rc = clGetPlatformIDs(0, NULL, &np);
    if (rc == MS_CL_PLATFORM_NOT_FOUND_KHR || (rc == CL_SUCCESS && np == 0))
        return MS_OK;
    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "clGetPlatformIDs failed: %s", ms_cl_strerror(rc));
    plats = ms_calloc(np, sizeof *plats, err);
    if (!plats)
        return err->status;
    rc = clGetPlatformIDs(np, plats, NULL);
    if (rc != CL_SUCCESS) {
        free(plats);
        return ms_err_set(err, MS_ERR_RUNTIME, "clGetPlatformIDs failed: %s", ms_cl_strerror(rc));
    }
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        cl_device_id *devs;

        /* A platform with no device answers CL_DEVICE_NOT_FOUND: skip it. */
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
            continue;
        devs = ms_calloc(nd, sizeof *devs, err);
        if (!devs)
            goto fail;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) {
            free(devs);
            continue;
        }
        if (count + (int)nd > cap) {
            int ncap = cap * 2 > count + (int)nd ? cap * 2 : count + (int)nd;
            struct ms_cl_devinfo *grown = ms_realloc(out, (size_t)ncap * sizeof *out, err);
            if (!grown) {
                free(devs);
                goto fail;
            }
            out = grown;
            cap = ncap;
        }
        for (cl_uint d = 0; d < nd; d++, count++)
            fill_info(&out[count], plats[p], devs[d], count);
        free(devs);
    }
    free(plats);
    *list = out;
    *n = count;
    return MS_OK;
fail:
    free(plats);
    free(out);
    return err->status;
}

/* Describe the devices in one short clause for "no GPU device found (...)". */
static void describe_devices(const struct ms_cl_devinfo *list, int n, char *buf, size_t cap)
{
    size_t used = 0;

    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, cap, "none");
        return;
    }
    for (int i = 0; i < n && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%d %s '%s'", i ? ", " : "", list[i].index,
                         ms_cl_type_name(list[i].type), list[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static int first_of_type(const struct ms_cl_devinfo *list, int n, cl_device_type type)
{
    for (int i = 0; i < n; i++)
        if (list[i].type & type)
            return i;
    return -1;
}

/* PoCL lists no platform at all when it cannot create its cache directory
 * (POCL_CACHE_DIR, else $XDG_CACHE_HOME/pocl, else $HOME/.cache/pocl). Say
 * so rather than "install a driver": find the nearest existing ancestor of
 * that directory and check it is a writable directory (nothing is created).
 * Returns 1 and a description in why, or 0. */
static int pocl_cache_unusable(char *why, size_t cap)
{
    const char *env = getenv("POCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char dir[1024], p[1024];
    struct stat st;

    if (env && *env)
        snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/pocl", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/pocl", home);
    else
        return 0;
    snprintf(p, sizeof p, "%s", dir);
    for (;;) {
        if (stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && access(p, W_OK) == 0)
                return 0;
            snprintf(why, cap, "'%s': '%s' is not a writable directory", dir, p);
            return 1;
        }
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            return 0;
        *slash = '\0';
    }
}

int ms_cl_pick(const struct ms_cl_devinfo *list, int n, const char *spec, struct ms_err *err)
{
    char devs[512];
    int i;

    if (!spec || !*spec)
        spec = "auto";
    if (n == 0) {
        char why[2400];
        if (pocl_cache_unusable(why, sizeof why))
            ms_err_set(err, MS_ERR_RUNTIME,
                       "no OpenCL platform found; PoCL lists none when it cannot create its "
                       "cache directory %s (set POCL_CACHE_DIR to a writable directory)",
                       why);
        else
            ms_err_set(err, MS_ERR_RUNTIME,
                       "no OpenCL platform found (install an OpenCL driver, "
                       "e.g. pocl-opencl-icd for the CPU)");
        return -1;
    }
    if (strcmp(spec, "auto") == 0) {
        if ((i = first_of_type(list, n, CL_DEVICE_TYPE_GPU)) >= 0)
            return i;
        if ((i = first_of_type(list, n, CL_DEVICE_TYPE_CPU)) >= 0)
            return i;
        return 0;
    }
    if (strcmp(spec, "gpu") == 0 || strcmp(spec, "cpu") == 0) {
        const int gpu = spec[0] == 'g';
        if ((i = first_of_type(list, n, gpu ? CL_DEVICE_TYPE_GPU : CL_DEVICE_TYPE_CPU)) >= 0)
            return i;
        describe_devices(list, n, devs, sizeof devs);
        ms_err_set(err, MS_ERR_INPUT, "no %s device found (devices: %s)", gpu ? "GPU" : "CPU",
                   devs);
        return -1;
    }
    if (spec[0] >= '0' && spec[0] <= '9' && strlen(spec) <= 9 &&
        strspn(spec, "0123456789") == strlen(spec)) {
        i = atoi(spec);
        if (i < n)
            return i;
        describe_devices(list, n, devs, sizeof devs);
        ms_err_set(err, MS_ERR_INPUT, "no device with index %d (devices: %s)", i, devs);
        return -1;
    }
    if (strcmp(spec, "all") == 0 || strchr(spec, ','))
        ms_err_set(err, MS_ERR_INPUT,
                   "--device %s names several devices; this command runs on one (search, score "
                   "and rerank spread over several)",
                   spec);
    else
        ms_err_set(
            err, MS_ERR_INPUT,
            "unknown device '%s' (expected auto, cpu, gpu or an index from 'maxsim devices')",
            spec);
    return -1;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int ms_cl_open(struct ms_cl *cl, const char *spec, struct ms_err *err)
{
    const double t0 = seconds_now();
    struct ms_cl_devinfo *list = NULL;
    cl_context_properties props[3];
    int n = 0, i;
    cl_int rc;

    memset(cl, 0, sizeof *cl);
    if (ms_cl_list(&list, &n, err) != MS_OK)
        return err->status;
    i = ms_cl_pick(list, n, spec, err);
    if (i < 0) {
        free(list);
        return err->status;
    }
    cl->info = list[i];
    free(list);

    const double t_listed = seconds_now();
    props[0] = CL_CONTEXT_PLATFORM;
    props[1] = (cl_context_properties)cl->info.platform;
    props[2] = 0;
    cl->ctx = clCreateContext(props, 1, &cl->info.device, NULL, NULL, &rc);
    if (!cl->ctx)
        return ms_err_set(err, MS_ERR_RUNTIME, "clCreateContext failed on '%s': %s", cl->info.name,
                          ms_cl_strerror(rc));
    /* In order: every run is upload, prep, score, read back, in sequence;
     * profiling gives the kernel times that bench and -v report. */
    const double t_context = seconds_now();
    cl->queue = clCreateCommandQueue(cl->ctx, cl->info.device, CL_QUEUE_PROFILING_ENABLE, &rc);
    if (!cl->queue) {
        clReleaseContext(cl->ctx);
        cl->ctx = NULL;
        return ms_err_set(err, MS_ERR_RUNTIME, "clCreateCommandQueue failed on '%s': %s",
                          cl->info.name, ms_cl_strerror(rc));
    }
    /* the driver's own start (platform query, context) is most of a short run's fixed cost */
    ms_cl_note(
        cl, "device opened in %.3f s: platforms and devices %.3f s, context %.3f s, queue %.3f s",
        seconds_now() - t0, t_listed - t0, t_context - t_listed, seconds_now() - t_context);
    return MS_OK;
}

void ms_cl_close(struct ms_cl *cl)
{
    if (!cl)
        return;
    if (cl->queue) {
        clFinish(cl->queue);
        clReleaseCommandQueue(cl->queue);
    }
    if (cl->ctx)
        clReleaseContext(cl->ctx);
    cl->queue = NULL;
    cl->ctx = NULL;
}

void ms_cl_leave(struct ms_cl *cl)
{
    if (cl && cl->queue)
        clFinish(cl->queue);
    if (cl) {
        cl->queue = NULL;
        cl->ctx = NULL;
    }
}

int ms_cl_fail(struct ms_err *err, const char *call, cl_int rc)
{
    return ms_err_set(err, MS_ERR_RUNTIME, "%s failed: %s", call, ms_cl_strerror(rc));
}

cl_mem ms_cl_buffer(const struct ms_cl *cl, cl_mem_flags flags, size_t bytes, const void *host,
                    const char *what, struct ms_err *err)
{
    cl_int rc;
    cl_mem m = clCreateBuffer(cl->ctx, flags | (host && bytes ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes ? bytes : 4, bytes ? (void *)(uintptr_t)host : NULL, &rc);
    if (!m)
        ms_err_set(err, MS_ERR_RUNTIME, "clCreateBuffer(%s, %zu bytes) failed on '%s': %s", what,
                   bytes, cl->info.name, ms_cl_strerror(rc));
    return m;
}

void ms_cl_release(cl_mem *m)
{
    if (*m)
        clReleaseMemObject(*m);
    *m = NULL;
}

int ms_cl_set_args(cl_kernel k, const char *name, const struct ms_cl_arg *args, int n,
                   struct ms_err *err)
{
    for (int i = 0; i < n; i++) {
        const cl_int rc = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value);
        if (rc != CL_SUCCESS)
            return ms_err_set(err, MS_ERR_RUNTIME, "clSetKernelArg(%s, argument %d) failed: %s",
                              name, i, ms_cl_strerror(rc));
    }
    return MS_OK;
}

double ms_cl_event_s(cl_event ev)
{
    cl_ulong a = 0, b = 0;
    if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof a, &a, NULL) != CL_SUCCESS ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof b, &b, NULL) != CL_SUCCESS ||
        b <= a)
        return 0.0;
    return (double)(b - a) * 1e-9;
}

int ms_cl_enqueue(struct ms_cl *cl, cl_kernel k, cl_uint dims, const size_t *global,
                  const size_t *local, const char *name, cl_event *ev, struct ms_err *err)
{
    const cl_int rc = clEnqueueNDRangeKernel(cl->queue, k, dims, NULL, global, local, 0, NULL, ev);
    return rc == CL_SUCCESS
               ? MS_OK
               : ms_err_set(err, MS_ERR_RUNTIME, "clEnqueueNDRangeKernel(%s) failed on '%s': %s",
                            name, cl->info.name, ms_cl_strerror(rc));
}

int ms_cl_launch(struct ms_cl *cl, cl_kernel k, cl_uint dims, const size_t *global,
                 const size_t *local, const char *name, double *time_s, struct ms_err *err)
{
    cl_event ev = NULL;
    if (ms_cl_enqueue(cl, k, dims, global, local, name, &ev, err) != MS_OK)
        return err->status;
    cl_int rc = clWaitForEvents(1, &ev);
    if (rc == CL_SUCCESS && time_s)
        *time_s += ms_cl_event_s(ev);
    clReleaseEvent(ev);
    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "kernel %s failed on '%s': %s", name, cl->info.name,
                          ms_cl_strerror(rc));
    return MS_OK;
}

int ms_cl_write(struct ms_cl *cl, cl_mem buf, size_t bytes, const void *host, double *time_s,
                const char *what, struct ms_err *err)
{
    return ms_cl_write_on(cl, cl->queue, buf, bytes, host, time_s, what, err);
}

int ms_cl_write_on(struct ms_cl *cl, cl_command_queue queue, cl_mem buf, size_t bytes,
                   const void *host, double *time_s, const char *what, struct ms_err *err)
{
    cl_event ev = NULL;
    cl_int rc = clEnqueueWriteBuffer(queue, buf, CL_TRUE, 0, bytes, host, 0, NULL, &ev);

    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "clEnqueueWriteBuffer(%s) failed on '%s': %s", what,
                          cl->info.name, ms_cl_strerror(rc));
    if (time_s)
        *time_s += ms_cl_event_s(ev);
    clReleaseEvent(ev);
    return MS_OK;
}

struct pinned {
    cl_mem buf;
    cl_command_queue queue;
    void *host;
    int plain; /* the driver would not pin that much: host is malloc'd */
};

void *ms_cl_pinned_alloc(void *ctx, size_t bytes, void **handle)
{
    const struct ms_cl *cl = ctx;
    struct pinned *p = calloc(1, sizeof *p);
    cl_int rc = CL_SUCCESS;

    *handle = NULL;
    if (!p)
        return NULL;
    p->queue = clCreateCommandQueue(cl->ctx, cl->info.device, 0, &rc);
    if (p->queue)
        p->buf =
            clCreateBuffer(cl->ctx, CL_MEM_READ_ONLY | CL_MEM_ALLOC_HOST_PTR, bytes, NULL, &rc);
    if (p->buf)
        p->host = clEnqueueMapBuffer(p->queue, p->buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                     bytes, 0, NULL, NULL, &rc);
    if (!p->host) {
        /* Pinned memory is a scarce resource: without it copies are slower, not wrong. */
        if (p->buf)
            clReleaseMemObject(p->buf);
        if (p->queue)
            clReleaseCommandQueue(p->queue);
        memset(p, 0, sizeof *p);
        p->plain = 1;
        if (!(p->host = malloc(bytes))) {
            free(p);
            return NULL;
        }
    }
    *handle = p;
    return p->host;
}

void ms_cl_pinned_free(void *ctx, void *handle)
{
    struct pinned *p = handle;

    (void)ctx;
    if (!p)
        return;
    if (p->plain) {
        free(p->host);
        free(p);
        return;
    }
    if (p->host) {
        clEnqueueUnmapMemObject(p->queue, p->buf, p->host, 0, NULL, NULL);
        clFinish(p->queue);
    }
    if (p->buf)
        clReleaseMemObject(p->buf);
    if (p->queue)
        clReleaseCommandQueue(p->queue);
    free(p);
}

int ms_cl_kernel(cl_program prog, const char *name, cl_kernel *k, struct ms_err *err)
{
    cl_int rc;
    *k = clCreateKernel(prog, name, &rc);
    if (!*k)
        return ms_err_set(err, MS_ERR_RUNTIME, "clCreateKernel(%s) failed: %s", name,
                          ms_cl_strerror(rc));
    return MS_OK;
}
