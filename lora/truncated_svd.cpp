#include "lora/truncated_svd.h"

// GCC 12 reports a false "may be used uninitialized" inside the AVX-512 intrinsics Eigen's
// kernels inline here; nothing of ours is affected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <Eigen/Dense>
#include <algorithm>

namespace hone {

void truncated_svd(const std::vector<double>& m, int64_t rows, int64_t cols, int64_t rank,
                   std::vector<double>& b, std::vector<double>& a) {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMajor> mat(m.data(), rows, cols);
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(mat),
                                           Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::MatrixXd& u = svd.matrixU();         // (rows, k)
  const Eigen::MatrixXd& v = svd.matrixV();         // (cols, k)
  const Eigen::VectorXd& s = svd.singularValues();  // (k) descending
  const int64_t k = std::min<int64_t>(rank, s.size());
  b.assign(static_cast<size_t>(rows * rank), 0.0);
  a.assign(static_cast<size_t>(rank * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) b[i * rank + j] = u(i, j) * s(j);
  for (int64_t j = 0; j < k; ++j)
    for (int64_t c = 0; c < cols; ++c) a[j * cols + c] = v(c, j);
}

}  // namespace hone
