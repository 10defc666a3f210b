/*
 * cl_dev.h - OpenCL devices: listing, choosing one from --device, and the
 * context, queue and compiled programs the kernels run in.
 *
 * Device specs (man/maxsim.1, --device): "auto" (the first GPU, else the first CPU),
 * "cpu", "gpu", or an index as `maxsim devices` prints it. MAXSIM_DEVICE
 * gives the default. Programs come from kernels/ embedded at build time, or
 * from $MAXSIM_KERNEL_DIR when set (development), and are cached on disk as
 * device binaries (cl_prog.c).
 */
#ifndef MS_CL_DEV_H
#define MS_CL_DEV_H

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <stdint.h>

#include "err.h"

/* One device as `maxsim devices` shows it. */
struct ms_cl_devinfo {
    int index; /* global index over all platforms */
    cl_platform_id platform;
    cl_device_id device;
    char platform_name[128];
    char platform_version[128];
    char name[256];
    char vendor[128];
    char version[128]; /* CL_DEVICE_VERSION */
    char driver_version[128];
    char c_version[128]; /* CL_DEVICE_OPENCL_C_VERSION */
    cl_device_type type;
    cl_uint compute_units;
    cl_ulong global_mem;
    cl_ulong local_mem;
    cl_ulong max_alloc;
    size_t max_work_group;
    int is_nvidia;
    int nv_cc_major, nv_cc_minor; /* cl_nv_device_attribute_query, 0 if absent */
};

/* List every device of every platform. *n == 0 with MS_OK when there is no
 * platform at all; the caller decides what that means. *list is owned. */
int ms_cl_list(struct ms_cl_devinfo **list, int *n, struct ms_err *err);
/* Index (into list) of the device a spec picks; -1 with an MS_ERR_INPUT error
 * when the spec is malformed or matches nothing. */
int ms_cl_pick(const struct ms_cl_devinfo *list, int n, const char *spec, struct ms_err *err);
/* "GPU", "CPU", "ACCELERATOR", ... */
const char *ms_cl_type_name(cl_device_type type);
/* Whether the device's extension string names ext, as a whole word. */
int ms_cl_has_extension(cl_device_id d, const char *ext);
/* "CL_OUT_OF_RESOURCES (-5)" */
const char *ms_cl_strerror(cl_int code);

/* An open device: context and in-order queue with profiling. */
struct ms_cl {
    struct ms_cl_devinfo info;
    cl_context ctx;
    cl_command_queue queue;
    int verbose; /* unused by src/: commands print `notes` with -v */
    /* What happened that a user may want to see with -v, one event a line
     * ("kernels from $MAXSIM_KERNEL_DIR ...", "cache HIT ...", "cache MISS
     * ..."); modules never print, so they append here and the command shows
     * it. Truncated, never overflowed. */
    char notes[2048];
};

/* Append one line (no newline needed) to cl->notes. */
void ms_cl_note(struct ms_cl *cl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int ms_cl_open(struct ms_cl *cl, const char *spec, struct ms_err *err);
void ms_cl_close(struct ms_cl *cl);
/* Wait for the queue, then forget the queue and the context without releasing them: for a
 * process about to exit, whose contexts the driver reclaims then (see ms_devices_close). */
void ms_cl_leave(struct ms_cl *cl);

/*
 * The helpers every device module uses (maxsim_cl.c, maxsim_nv.c, plaid_cl.c), so that buffer
 * creation, launches and their error texts are written once.
 */

/* Set err to "CALL failed: CL_ERROR_NAME (code)" (MS_ERR_RUNTIME) and return that status. */
int ms_cl_fail(struct ms_err *err, const char *call, cl_int rc);
/* A buffer of `bytes` (one word when 0: zero-sized buffers are invalid in OpenCL), filled from
 * `host` when it is not NULL; NULL with the error set (naming `what` and the device). */
cl_mem ms_cl_buffer(const struct ms_cl *cl, cl_mem_flags flags, size_t bytes, const void *host,
                    const char *what, struct ms_err *err);
/* Release *m if set and clear it. */
void ms_cl_release(cl_mem *m);

/* One kernel argument: its size and address. MS_ARG(x) for a variable or cl_mem. */
struct ms_cl_arg {
    size_t size;
    const void *value;
};
#define MS_ARG(x) ((struct ms_cl_arg){ sizeof(x), &(x) })
/* Set the arguments of kernel `name` one at a time; a failure names the kernel and the
 * argument's index (as ggml's CL_CHECK and CLBlast's SetArgument do). */
int ms_cl_set_args(cl_kernel k, const char *name, const struct ms_cl_arg *args, int n,
                   struct ms_err *err);
#define MS_CL_SET_ARGS(k, name, err, ...)                                                          \
    ms_cl_set_args(                                                                                \
        (k), (name), (const struct ms_cl_arg[]){ __VA_ARGS__ },                                    \
        (int)(sizeof((const struct ms_cl_arg[]){ __VA_ARGS__ }) / sizeof(struct ms_cl_arg)),       \
        (err))
/* Seconds a finished command ran, from its profiling event (0 when the device gives none). */
double ms_cl_event_s(cl_event ev);
/* Enqueue kernel `name` on the device's queue, wait for it, and add its run time from the
 * profiling event to *time_s (when not NULL). */
int ms_cl_launch(struct ms_cl *cl, cl_kernel k, cl_uint dims, const size_t *global,
                 const size_t *local, const char *name, double *time_s, struct ms_err *err);
/* Enqueue kernel `name` on the device's queue without waiting; *ev is its event (the caller
 * waits for it and releases it). */
int ms_cl_enqueue(struct ms_cl *cl, cl_kernel k, cl_uint dims, const size_t *global,
                  const size_t *local, const char *name, cl_event *ev, struct ms_err *err);
/* Copy `bytes` from host memory to the start of buf on the device's queue and wait; the
 * copy's time from its profiling event is added to *time_s (when not NULL), so that -v
 * can give the host-to-device rate. */
int ms_cl_write(struct ms_cl *cl, cl_mem buf, size_t bytes, const void *host, double *time_s,
                const char *what, struct ms_err *err);
/* The same on another queue of cl's context (a copy queue beside the kernels'). */
int ms_cl_write_on(struct ms_cl *cl, cl_command_queue queue, cl_mem buf, size_t bytes,
                   const void *host, double *time_s, const char *what, struct ms_err *err);

/* Pinned (page-locked) host memory for blocks of documents, as struct ms_alloc wants it
 * (ctx: the struct ms_cl): a CL_MEM_ALLOC_HOST_PTR buffer mapped for writing, the way
 * NVIDIA's OpenCL guide says to get host memory the device copies from at full speed.
 * Callable from a reader thread (its own queue maps and unmaps). Plain malloc'd memory when
 * the driver refuses; NULL only when that fails too. */
void *ms_cl_pinned_alloc(void *ctx, size_t bytes, void **handle);
void ms_cl_pinned_free(void *ctx, void *handle);

/* Create kernel `name` of prog into *k. */
int ms_cl_kernel(cl_program prog, const char *name, cl_kernel *k, struct ms_err *err);

/* Build (or load from the on-disk cache) the program of kernels/<file> with
 * the given options. On a build failure the error message holds the file,
 * device, options and the build log (several lines: the one exception). */
int ms_cl_program(struct ms_cl *cl, const char *file, const char *options, cl_program *out,
                  struct ms_err *err);

/* Where compiled programs are cached and what is there: returns 0 when the
 * cache is off (MAXSIM_CACHE_DIR=off, or no home directory), else 1 with
 * dir, the number of .clbin entries and their bytes (0 if it does not exist
 * yet). Creates nothing. */
int ms_cl_cache_info(char *dir, size_t cap, uint64_t *entries, uint64_t *bytes);

/* Embedded kernel sources (generated build/gen/kernels.c). */
struct ms_kernel_src {
    const char *name; /* "maxsim.cl" */
    const char *text;
    size_t len;
};
extern const struct ms_kernel_src ms_kernel_sources[];
extern const int ms_kernel_sources_n;

#endif
