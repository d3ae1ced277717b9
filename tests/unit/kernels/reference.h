// Naive double-precision versions of spin's kernels, written from the formulas (not from the
// optimised code), for the kernel tests. Same layouts as kernels/kernels.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace spin::testing::ref {

using Vec = std::vector<double>;

// C = alpha op(A) op(B) + beta C, row-major.
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const Vec& a, int lda,
                 const Vec& b, int ldb, double beta, Vec& c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double s = 0.0;
      for (int p = 0; p < k; ++p) {
        const double av = ta ? a[static_cast<std::size_t>(p * lda + i)] : a[static_cast<std::size_t>(i * lda + p)];
        const double bv = tb ? b[static_cast<std::size_t>(j * ldb + p)] : b[static_cast<std::size_t>(p * ldb + j)];
        s += av * bv;
      }
      double& out = c[static_cast<std::size_t>(i * ldc + j)];
      out = alpha * s + beta * out;
    }
  }
}

inline Vec rmsnorm(const Vec& x, const Vec& w, int n, int dim, double eps) {
  Vec out(x.size());
  for (int i = 0; i < n; ++i) {
    double ss = 0.0;
    for (int j = 0; j < dim; ++j) ss += x[i * dim + j] * x[i * dim + j];
    const double r = 1.0 / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) out[i * dim + j] = x[i * dim + j] * r * w[j];
  }
  return out;
}

// Gradients of sum(dout * rmsnorm(x, w)) by the quotient rule, element by element.
inline void rmsnorm_backward(const Vec& dout, const Vec& x, const Vec& w, int n, int dim,
                             double eps, Vec& dx, Vec& dw) {
  dx.assign(x.size(), 0.0);
  dw.assign(static_cast<std::size_t>(dim), 0.0);
  for (int i = 0; i < n; ++i) {
    double ss = 0.0;
    for (int j = 0; j < dim; ++j) ss += x[i * dim + j] * x[i * dim + j];
    const double ms = ss / dim + eps;
    const double r = 1.0 / std::sqrt(ms);
    for (int j = 0; j < dim; ++j) dw[j] += dout[i * dim + j] * x[i * dim + j] * r;
    // d out_j / d x_m = w_j (delta_jm r - x_j x_m r^3 / dim)
    for (int m = 0; m < dim; ++m) {
      double g = 0.0;
      for (int j = 0; j < dim; ++j) {
        const double jac = w[j] * ((j == m ? r : 0.0) - x[i * dim + j] * x[i * dim + m] * r * r * r / dim);
        g += dout[i * dim + j] * jac;
      }
      dx[i * dim + m] = g;
    }
  }
}

// Hugging Face rotate_half RoPE with angles computed in double.
inline Vec rope(const Vec& x, const std::vector<std::int32_t>& pos, int n, int heads, int hd,
                double theta, double sign = 1.0) {
  Vec out(x.size());
  const int half = hd / 2;
  for (int r = 0; r < n; ++r) {
    for (int h = 0; h < heads; ++h) {
      for (int d = 0; d < hd; ++d) {
        const int i = d % half;
        const double angle = sign * pos[r] / std::pow(theta, 2.0 * i / hd);
        const double rotated = d < half ? -x[(r * heads + h) * hd + d + half]
                                        : x[(r * heads + h) * hd + d - half];
        out[(r * heads + h) * hd + d] =
            x[(r * heads + h) * hd + d] * std::cos(angle) + rotated * std::sin(angle);
      }
    }
  }
  return out;
}

// Causal GQA attention over packed sequences; also returns the probabilities per
// (sequence, head) in the kernel's layout. Scores scale q.k (scale 0: 1/sqrt(hd)), then with
// cap > 0 cap tanh(s / cap); with window > 0 query i sees keys i - window < j <= i only.
inline Vec attention(const Vec& q, const Vec& k, const Vec& v, const std::vector<std::int64_t>& cu,
                     int heads, int kvh, int hd, Vec* probs = nullptr, double scale = 0.0, double cap = 0.0,
                     int window = 0) {
  Vec out(q.size(), 0.0);
  if (probs) probs->clear();
  if (scale == 0.0) scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (std::size_t s = 0; s + 1 < cu.size(); ++s) {
    const int start = static_cast<int>(cu[s]);
    const int len = static_cast<int>(cu[s + 1] - cu[s]);
    for (int h = 0; h < heads; ++h) {
      const int g = h / (heads / kvh);
      for (int i = 0; i < len; ++i) {
        std::vector<double> p(static_cast<std::size_t>(len), 0.0);
        double m = -1e300;
        const int j0 = window > 0 ? std::max(0, i - window + 1) : 0;
        for (int j = j0; j <= i; ++j) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d) {
            dot += q[((start + i) * heads + h) * hd + d] * k[((start + j) * kvh + g) * hd + d];
          }
          p[j] = cap > 0.0 ? cap * std::tanh(dot * scale / cap) : dot * scale;
          m = std::max(m, p[j]);
        }
        double z = 0.0;
        for (int j = j0; j <= i; ++j) z += (p[j] = std::exp(p[j] - m));
        for (int j = j0; j <= i; ++j) p[j] /= z;
        for (int d = 0; d < hd; ++d) {
          double o = 0.0;
          for (int j = j0; j <= i; ++j) o += p[j] * v[((start + j) * kvh + g) * hd + d];
          out[((start + i) * heads + h) * hd + d] = o;
        }
        if (probs) probs->insert(probs->end(), p.begin(), p.end());
      }
    }
  }
  return out;
}

inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

// Log-softmax of full logits [n, vocab] at the targets (targets < 0 give 0).
inline Vec logprobs(const Vec& logits, const std::vector<std::int32_t>& targets, int n,
                    int vocab) {
  Vec out(static_cast<std::size_t>(n), 0.0);
  for (int i = 0; i < n; ++i) {
    if (targets[i] < 0) continue;
    double m = -1e300;
    for (int v = 0; v < vocab; ++v) m = std::max(m, logits[i * vocab + v]);
    double z = 0.0;
    for (int v = 0; v < vocab; ++v) z += std::exp(logits[i * vocab + v] - m);
    out[i] = logits[i * vocab + targets[i]] - m - std::log(z);
  }
  return out;
}

}  // namespace spin::testing::ref

#include <functional>

namespace spin::testing::ref {

// The gradient of `loss` at the listed coordinates of x by central differences in double
// (step h): accurate to ~1e-8 relative for the smooth reference functions, hence a reference
// for the float backwards.
inline Vec numeric_gradient_at(Vec x, const std::vector<std::size_t>& coords,
                               const std::function<double(const Vec&)>& loss, double h = 1e-6) {
  Vec g;
  for (std::size_t i : coords) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss(x);
    x[i] = saved - h;
    const double down = loss(x);
    x[i] = saved;
    g.push_back((up - down) / (2 * h));
  }
  return g;
}

// The same at every coordinate.
inline Vec numeric_gradient(const Vec& x, const std::function<double(const Vec&)>& loss) {
  std::vector<std::size_t> all(x.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  return numeric_gradient_at(x, all, loss);
}

inline double dot(const Vec& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace spin::testing::ref
