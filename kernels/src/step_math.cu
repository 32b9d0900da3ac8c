// wgraph step math: the CUDA twins of kernels/src/host.rs, compiled at run
// time with NVRTC (--fmad=false, so a*b+c is not contracted into an FMA and
// the f32/f64 operations round as the host's do). One thread per output
// value; `n` is the output's length.

typedef unsigned long long u64;

#define IDX() u64 i = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x; if (i >= n) return;

// x <- x + s*(a - b), f32 (euler, guidance).
extern "C" __global__ void axpy_diff(float* x, const float* a, const float* b, float s, u64 n) {
    IDX();
    x[i] = x[i] + s * (a[i] - b[i]);
}

// x <- x + s*(a - b), the sum in f64 (a - b in f32) (aam).
extern "C" __global__ void axpy_diff_wide(float* x, const float* a, const float* b, double s, u64 n) {
    IDX();
    x[i] = (float)((double)x[i] + s * (double)(a[i] - b[i]));
}

// x <- x + s*v, f64 with an f64 velocity (tts).
extern "C" __global__ void axpy_wide(float* x, const double* v, double s, u64 n) {
    IDX();
    x[i] = (float)((double)x[i] + s * v[i]);
}

// out <- (1 - s)*x0 + s*noise, f64 (re-noising).
extern "C" __global__ void renoise(float* out, const float* x0, const float* noise, double s, u64 n) {
    IDX();
    out[i] = (float)((1.0 - s) * (double)x0[i] + s * (double)noise[i]);
}

// One DDIM step from eps (z read only when has_z != 0 and std > 0).
extern "C" __global__ void ddim_step(float* x, const float* eps, const float* z, double sa_t,
                                     double sb_t, double sa_p, double dir, double std_,
                                     int has_z, u64 n) {
    IDX();
    double e = (double)eps[i];
    double x0 = ((double)x[i] - sb_t * e) / sa_t;
    double next = sa_p * x0 + dir * e;
    if (has_z != 0 && std_ > 0.0) {
        next += std_ * (double)z[i];
    }
    x[i] = (float)next;
}

// One Euler-Maruyama step of the flow SDE.
extern "C" __global__ void sde_step(float* x, const float* x0, const float* eps, const float* z,
                                    double s, double ds, double eta, double amp, u64 n) {
    IDX();
    double xf = (double)x[i], x0f = (double)x0[i], ef = (double)eps[i];
    double v = ef - x0f;
    double score = -(xf - (1.0 - s) * x0f) / (s * s);
    double next = xf + ds * v - 0.5 * eta * eta * score * ds + amp * (double)z[i];
    x[i] = (float)next;
}

// AAM's frequency split: x <- low + (x - own_low), f64.
extern "C" __global__ void highpass_mix(float* x, const double* low, const double* own_low, u64 n) {
    IDX();
    x[i] = (float)(low[i] + ((double)x[i] - own_low[i]));
}

// k x k average pooling of a [C, H, W] latent into [H/k * W/k, C] tokens.
extern "C" __global__ void avg_pool2d(float* out, const float* l, u64 c, u64 h, u64 w, u64 k,
                                      u64 n) {
    IDX();
    u64 pw = w / k;
    u64 ch = i % c;
    u64 blk = i / c;
    u64 bj = blk % pw, bi = blk / pw;
    const float* plane = l + ch * h * w;
    float sum = 0.0f;
    for (u64 dy = 0; dy < k; ++dy) {
        const float* row = plane + (bi * k + dy) * w + bj * k;
        float rs = -0.0f;
        for (u64 dx = 0; dx < k; ++dx) {
            rs = rs + row[dx];
        }
        sum = sum + rs;
    }
    float scale = 1.0f / (float)(k * k);
    out[i] = sum * scale;
}

// p x p patch tokens of a [C, H, W] latent: [H/p * W/p, C*p*p].
extern "C" __global__ void patchify(float* out, const float* l, u64 c, u64 h, u64 w, u64 p, u64 n) {
    IDX();
    u64 pw = w / p;
    u64 dx = i % p;
    u64 dy = (i / p) % p;
    u64 ch = (i / (p * p)) % c;
    u64 tok = i / (p * p * c);
    u64 bj = tok % pw, bi = tok / pw;
    out[i] = l[ch * h * w + (bi * p + dy) * w + bj * p + dx];
}
