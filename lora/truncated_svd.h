// The best rank-R approximation of a dense matrix (Eckart–Young), as LoRA factors: the one file
// that uses Eigen.
#pragma once

#include <cstdint>
#include <vector>

namespace hone {

// M (rows, cols) row-major f64 ≈ B·A with B = U_R·S_R (rows, rank) and A = V_Rᵀ (rank, cols),
// both row-major; singular triplets beyond min(rows, cols) are zero. The decomposition is
// deterministic for a given input (Eigen's BDCSVD, no randomness, no threads).
void truncated_svd(const std::vector<double>& m, int64_t rows, int64_t cols, int64_t rank,
                   std::vector<double>& b, std::vector<double>& a);

}  // namespace hone
