/*
 * maxsim_ref.c - the scalar double-precision MaxSim reference, the oracle the
 * OpenCL scorer is tested against.
 *
 * Deliberately the plainest loop nest: every element widened to double, every
 * product and sum in double, normalization in double with the same
 * max(norm, 1e-12) floor as the kernels (man/maxsim.1, DESCRIPTION). Rows with no
 * token score exactly 0. Speed does not matter here; obviousness does.
 */
#include <math.h>
#include <stdlib.h>

#include "maxsim.h"

/* 1 / max(|x|, 1e-12) of every token of `e`, or all ones without normalize. */
static double *inv_norms(const struct ms_emb *e, int normalize)
{
    const uint64_t n = ms_emb_n_tokens(e);
    double *s = malloc((n ? n : 1) * sizeof *s);

    if (!s)
        return NULL;
    for (uint64_t t = 0; t < n; t++) {
        double ss = 0.0;
        if (normalize) {
            for (uint32_t k = 0; k < e->dim; k++) {
                const double x = ms_emb_value(e, t, k);
                ss += x * x;
            }
        }
        s[t] = normalize ? 1.0 / fmax(sqrt(ss), 1e-12) : 1.0;
    }
    return s;
}

void ms_ref_scores(const struct ms_emb *q, const struct ms_emb *d, int normalize, double *out)
{
    double *qs = inv_norms(q, normalize), *ds = inv_norms(d, normalize);

    /* Tests only: an allocation failure here is a test failure, shown as NaN scores. */
    for (uint64_t i = 0; i < q->n_rows; i++) {
        for (uint64_t j = 0; j < d->n_rows; j++) {
            double score = 0.0;
            if (!qs || !ds) {
                out[i * d->n_rows + j] = NAN;
                continue;
            }
            if (ms_emb_row_len(d, j) > 0) {
                for (uint64_t a = q->offsets[i]; a < q->offsets[i + 1]; a++) {
                    double best = -INFINITY;
                    for (uint64_t b = d->offsets[j]; b < d->offsets[j + 1]; b++) {
                        double dot = 0.0;
                        for (uint32_t k = 0; k < q->dim; k++)
                            dot += (double)ms_emb_value(q, a, k) * ms_emb_value(d, b, k);
                        dot *= qs[a] * ds[b];
                        if (dot > best)
                            best = dot;
                    }
                    score += best;
                }
            }
            out[i * d->n_rows + j] = score;
        }
    }
    free(qs);
    free(ds);
}
