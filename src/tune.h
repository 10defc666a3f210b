/*
 * tune.h - the tuning table: the fastest kernel variant measured for a class of shapes on one
 * device, kept beside the kernel cache (CACHE_DIR/tune.tsv) so that it is measured once per
 * device and driver (`maxsim bench --tune`) and read by every later run.
 *
 * One line per (device, class): DEVICE<TAB>CLASS<TAB>VARIANT<TAB>MILLISECONDS. DEVICE names the
 * device, its driver and platform version (a new driver is a new device: the old lines are
 * ignored, not trusted); CLASS is what the scorer derives from its query batch (maxsim_nv.c);
 * VARIANT is a MAXSIM_NV_VARIANT string. The file is rewritten whole through a temporary file
 * and a rename, so readers never see half of it. No OpenCL here: callers pass the strings.
 */
#ifndef MS_TUNE_H
#define MS_TUNE_H

#include <stddef.h>

#include "err.h"

/* The file's path into buf; 0 when the cache is off (MAXSIM_CACHE_DIR=off, no home). */
int ms_tune_path(char *buf, size_t cap);
/* The variant stored for (device, class) into variant; 1 found, 0 not (or no readable file). */
int ms_tune_lookup(const char *device, const char *klass, char *variant, size_t cap);
/* Store (or replace) the line of (device, class). */
int ms_tune_store(const char *device, const char *klass, const char *variant, double ms,
                  struct ms_err *err);

#endif
