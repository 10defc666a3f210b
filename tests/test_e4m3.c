/*
 * test_e4m3.c - the host's float8 e4m3 conversion (--precision f8 queries): every finite code
 * converts back to itself, values between two codes go to the nearer (ties to the even code),
 * and magnitudes past 448 saturate, as the device's cvt.rn.satfinite.e4m3x2.f32 does.
 */
#include <math.h>

#include "emb.h"
#include "testutil.h"

Test(e4m3, every_code_round_trips)
{
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7F) == 0x7F) /* NaN */
            continue;
        const float v = ms_e4m3_to_float((uint8_t)c);
        const uint8_t back = ms_float_to_e4m3(v);
        if (c == 0x80) /* -0 */
            cr_assert(back == 0x80 || back == 0x00);
        else
            cr_assert_eq(back, c, "code 0x%02x = %g came back as 0x%02x", c, v, back);
    }
    cr_assert_float_eq(ms_e4m3_to_float(0x7E), 448.0f, 0);
    cr_assert_float_eq(ms_e4m3_to_float(0x01), 0x1p-9f, 0);
    cr_assert_float_eq(ms_e4m3_to_float(0x08), 0x1p-6f, 0);
}

Test(e4m3, nearest_even_and_saturation)
{
    /* Between every pair of neighbouring positive codes: a point just below the midpoint goes
     * down, just above goes up, the midpoint itself to the code with an even mantissa. */
    for (int c = 0; c < 0x7E; c++) {
        const float lo = ms_e4m3_to_float((uint8_t)c), hi = ms_e4m3_to_float((uint8_t)(c + 1));
        const float mid = (lo + hi) / 2;
        cr_assert_eq(ms_float_to_e4m3(nextafterf(mid, lo)), c, "below the midpoint of 0x%02x", c);
        cr_assert_eq(ms_float_to_e4m3(nextafterf(mid, hi)), c + 1, "above the midpoint of 0x%02x",
                     c);
        cr_assert_eq(ms_float_to_e4m3(mid), (c & 1) ? c + 1 : c, "midpoint after 0x%02x", c);
        cr_assert_eq(ms_float_to_e4m3(-mid), 0x80 | ((c & 1) ? c + 1 : c));
    }
    cr_assert_eq(ms_float_to_e4m3(449.0f), 0x7E);
    cr_assert_eq(ms_float_to_e4m3(1e30f), 0x7E);
    cr_assert_eq(ms_float_to_e4m3(-1e30f), 0xFE);
    cr_assert_eq(ms_float_to_e4m3(0x1p-11f), 0x00, "under half the smallest subnormal: zero");
}
