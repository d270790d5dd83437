#include "worker/train/batch_plan.h"

#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "worker/train/causal_lm_loss.h"

namespace pdsd {

namespace {

// Positions of a sample that predict a label once it is laid in a row: token t's label (t >= 1) is
// predicted from position t - 1; the first token's never is (in a packed row that would be a
// prediction across samples), as tensors() lays them out.
int64_t labelled_positions(const SftExample& e) {
  int64_t n = 0;
  for (size_t t = 1; t < e.labels.size(); ++t) n += e.labels[t] != kIgnoreIndex ? 1 : 0;
  return n;
}

}  // namespace

BatchPlan::BatchPlan(std::vector<SftExample> examples, BatchingOptions options)
    : examples_(std::move(examples)), options_(options) {
  PDSD_CHECK(!examples_.empty(), "no training samples left after loading and filtering the datasets");
  const int64_t per_step = options_.world_size * options_.gradient_accumulation_steps;
  const int64_t batches = static_cast<int64_t>(epoch_batches(0).size());
  steps_per_epoch_ = batches / per_step;
  if (steps_per_epoch_ == 0) {
    throw InputError(str("the dataset gives ", batches, " micro-batches per epoch, fewer than one optimizer step needs (",
                         options_.world_size, " ranks × gradient_accumulation_steps ", options_.gradient_accumulation_steps,
                         "); lower per_device_train_batch_size or gradient_accumulation_steps"));
  }
}

int64_t BatchPlan::total_steps(double num_train_epochs, int64_t max_steps) const {
  if (max_steps > 0) return max_steps;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(num_train_epochs * static_cast<double>(steps_per_epoch_))));
}

const std::vector<std::vector<BatchPlan::Row>>& BatchPlan::epoch_batches(int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_;
  std::vector<int64_t> order(examples_.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(options_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<Row> rows;
  if (options_.packing) {
    int64_t used = 0;
    for (int64_t i : order) {
      const int64_t len = static_cast<int64_t>(examples_[i].input_ids.size());
      if (rows.empty() || used + len > options_.cutoff_len) rows.emplace_back(), used = 0;
      rows.back().push_back(i);
      used += len;
    }
  } else {
    for (int64_t i : order) rows.push_back({i});
  }
  std::vector<std::vector<Row>> batches;
  for (size_t start = 0; start + options_.batch_size <= rows.size(); start += options_.batch_size) {
    batches.emplace_back(rows.begin() + start, rows.begin() + start + options_.batch_size);
  }
  cached_epoch_ = epoch;
  cached_ = std::move(batches);
  return cached_;
}

TrainBatch BatchPlan::tensors(const std::vector<Row>& rows_in) const {
  std::vector<Row> rows = rows_in;
  if (options_.padding_free) {  // every sample of the micro-batch in one row, end to end
    Row all;
    for (const auto& row : rows_in) all.insert(all.end(), row.begin(), row.end());
    rows = {all};
  }
  int64_t width = 0;
  for (const auto& row : rows) {
    int64_t len = 0;
    for (int64_t i : row) len += static_cast<int64_t>(examples_[i].input_ids.size());
    width = std::max(width, len);
  }
  const int64_t n = static_cast<int64_t>(rows.size());
  at::Tensor ids = at::full({n, width}, options_.pad_id, at::kLong);
  at::Tensor labels = at::full({n, width}, kIgnoreIndex, at::kLong);
  at::Tensor positions = at::zeros({n, width}, at::kLong);
  at::Tensor segments = at::full({n, width}, -1, at::kLong);  // padding: a segment of its own
  auto ids_a = ids.accessor<int64_t, 2>(), labels_a = labels.accessor<int64_t, 2>(),
       pos_a = positions.accessor<int64_t, 2>(), seg_a = segments.accessor<int64_t, 2>();
  std::vector<int32_t> offsets{0};
  int64_t longest = 0;
  TrainBatch batch;
  for (int64_t r = 0; r < n; ++r) {
    int64_t col = 0, segment = 0;
    for (int64_t i : rows[r]) {
      const SftExample& e = examples_[i];
      for (size_t t = 0; t < e.input_ids.size(); ++t, ++col) {
        ids_a[r][col] = e.input_ids[t];
        // Predicting sample k+1's first token from sample k's last is cross-sample: no label there.
        labels_a[r][col] = t == 0 ? kIgnoreIndex : e.labels[t];
        pos_a[r][col] = static_cast<int64_t>(t);
        seg_a[r][col] = segment;
      }
      ++segment;
      const int64_t len = static_cast<int64_t>(e.input_ids.size());
      offsets.push_back(offsets.back() + static_cast<int32_t>(len));
      longest = std::max(longest, len);
      batch.real_tokens += len;
    }
    for (int64_t c = col; c < width; ++c) pos_a[r][c] = c - col;
  }
  // Positions that predict a label: position t predicts label t+1 within its row.
  std::vector<int64_t> loss_positions, loss_targets;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c + 1 < width; ++c) {
      if (labels_a[r][c + 1] == kIgnoreIndex) continue;
      loss_positions.push_back(r * width + c);
      loss_targets.push_back(labels_a[r][c + 1]);
    }
  }
  batch.loss_positions = at::tensor(loss_positions, at::kLong);
  batch.loss_targets = at::tensor(loss_targets, at::kLong);
  if (options_.packing || options_.padding_free) batch.tokens.segment_ids = segments;
  if (options_.padding_free) {
    batch.tokens.cu_seqlens = at::tensor(offsets, at::kInt);
    batch.tokens.max_seqlen = longest;
  }
  batch.tokens.input_ids = ids;
  batch.tokens.position_ids = positions;
  batch.labels = labels;
  return batch;
}

BatchPlan::StepRows BatchPlan::rows_of_step(int64_t step) const {
  const int64_t epoch = step / steps_per_epoch_, within = step % steps_per_epoch_;
  const int64_t ga = options_.gradient_accumulation_steps, world = options_.world_size;
  const auto& batches = epoch_batches(epoch);
  StepRows out;
  if (world == 1) {
    for (int64_t a = 0; a < ga; ++a) out.micro_batches.push_back(batches.at(within * ga + a));
    return out;
  }
  // Every rank waits for the slowest at each step, and samples differ in length: the step's rows
  // (those of its world × ga micro-batches, the same set whatever the world size) are dealt out
  // longest first, each to the rank with the fewest tokens so far among those with room left. Each
  // rank gets ga × batch_size rows, so the update is the one a single process makes from that set.
  std::vector<Row> rows;
  for (int64_t m = within * ga * world; m < (within + 1) * ga * world; ++m) {
    for (const Row& row : batches.at(m)) rows.push_back(row);
  }
  std::vector<int64_t> tokens(rows.size(), 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t e : rows[i]) tokens[i] += static_cast<int64_t>(examples_[e].input_ids.size());
  }
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tokens[a] > tokens[b]; });
  const size_t per_rank = static_cast<size_t>(ga * options_.batch_size);
  std::vector<std::vector<Row>> dealt(static_cast<size_t>(world));
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (size_t i : order) {
    size_t best = dealt.size();
    for (size_t r = 0; r < dealt.size(); ++r) {
      if (dealt[r].size() < per_rank && (best == dealt.size() || load[r] < load[best])) best = r;
    }
    dealt[best].push_back(rows[i]);
    load[best] += tokens[i];
  }
  // Every rank deals every rank's rows, so each knows the step's totals without asking the others.
  out.step_loss_tokens = 0;
  for (const Row& row : rows) {
    for (int64_t e : row) out.step_loss_tokens += labelled_positions(examples_[e]);
  }
  out.step_real_tokens = std::accumulate(tokens.begin(), tokens.end(), int64_t{0});
  const auto& mine = dealt[static_cast<size_t>(options_.rank)];
  for (int64_t a = 0; a < ga; ++a) {
    auto first = mine.begin() + a * options_.batch_size;
    out.micro_batches.emplace_back(first, first + options_.batch_size);
  }
  return out;
}

std::vector<TrainBatch> BatchPlan::micro_batches(int64_t step) const {
  StepRows step_rows = rows_of_step(step);
  std::vector<TrainBatch> out;
  for (const auto& rows : step_rows.micro_batches) {
    out.push_back(tensors(rows));
    out.back().step_loss_tokens = step_rows.step_loss_tokens;
    out.back().step_real_tokens = step_rows.step_real_tokens;
  }
  return out;
}

std::vector<BatchPlan::Shape> BatchPlan::micro_batch_shapes(int64_t step) const {
  std::vector<Shape> out;
  for (const auto& rows : rows_of_step(step).micro_batches) {
    Shape shape;
    for (const Row& row : rows) {
      for (int64_t e : row) shape.tokens += static_cast<int64_t>(examples_[e].input_ids.size()), ++shape.sequences;
    }
    out.push_back(shape);
  }
  return out;
}

std::vector<TrainBatch> BatchPlan::all_batches() const {
  std::vector<TrainBatch> out;
  for (size_t start = 0; start < examples_.size(); start += options_.batch_size) {
    std::vector<Row> rows;
    for (size_t i = start; i < std::min(examples_.size(), start + options_.batch_size); ++i) rows.push_back({static_cast<int64_t>(i)});
    out.push_back(tensors(rows));
  }
  return out;
}

}  // namespace pdsd
