/* math.c: the <math.h> functions the Swift stdlib references (Dictionary/Set capacity math uses ceil). */

/* Doubles at or beyond 2^52 in magnitude are already integral. */
#define TWO_POW_52 4503599627370496.0

double ceil(double x)
{
    if (x != x || x >= TWO_POW_52 || x <= -TWO_POW_52)
        return x;
    double t = (double)(long long)x;
    return t < x ? t + 1.0 : t;
}

double floor(double x)
{
    if (x != x || x >= TWO_POW_52 || x <= -TWO_POW_52)
        return x;
    double t = (double)(long long)x;
    return t > x ? t - 1.0 : t;
}

double round(double x) { return x >= 0 ? floor(x + 0.5) : -floor(-x + 0.5); }
