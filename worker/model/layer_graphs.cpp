#include "worker/model/layer_graphs.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>

#include "common/error.h"
#include "worker/model_config.h"

#ifdef PDSD_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pdsd {

int64_t graph_token_bucket(int64_t tokens) {
  PDSD_CHECK(tokens > 0, "cuda_graphs: a micro-batch of ", tokens, " tokens");
  int64_t power = 1;
  while (power * 2 <= tokens) power *= 2;
  const int64_t step = std::max<int64_t>(power / 8, 64);
  return (tokens + step - 1) / step * step;
}

#ifdef PDSD_HAVE_CUDA

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A tensor over the same memory that does not own it: the graphs' tensors live in their memory
// pool, which a later bucket's capture may take over (see the header).
at::Tensor alias_of(const at::Tensor& t) {
  if (!t.defined()) return t;
  return at::for_blob(t.data_ptr(), t.sizes()).strides(t.strides()).options(t.options()).target_device(t.device()).make_tensor();
}

// The first `tokens` rows of a contiguous [1, T_b, H] buffer, as a tensor of its own rather than a
// view (an autograd function's output may not be a view of a tensor that is not its input).
at::Tensor first_tokens(const at::Tensor& t, int64_t tokens) {
  return at::for_blob(t.data_ptr(), {1, tokens, t.size(2)}).options(t.options()).target_device(t.device()).make_tensor();
}

// Stands for one graphed layer in the model's autograd graph: its inputs are the layer's input and
// what trains in it, so autograd hands their gradients on (to earlier layers, to AccumulateGrad and
// the data-parallel hooks behind it) as it would for the eager layer.
struct GraphedLayer : public torch::autograd::Function<GraphedLayer> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList trained, int64_t graphs,
                            int64_t layer) {
    ctx->saved_data["graphs"] = graphs;
    ctx->saved_data["layer"] = layer;
    return reinterpret_cast<LayerGraphs*>(graphs)->forward(layer, x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    auto* graphs = reinterpret_cast<LayerGraphs*>(ctx->saved_data["graphs"].toInt());
    variable_list grads = graphs->backward(ctx->saved_data["layer"].toInt(), grad_output[0]);
    grads.emplace_back();  // graphs
    grads.emplace_back();  // layer
    return grads;
  }
};

}  // namespace

namespace {

// Model weights replaced for a capture, put back when it ends (or fails).
class StandIns {
 public:
  explicit StandIns(CausalLM& model) : model_(model) {}
  ~StandIns() {
    for (auto& [name, original] : originals_) model_.parameters()[name] = std::move(original);
  }
  StandIns(const StandIns&) = delete;
  StandIns& operator=(const StandIns&) = delete;
  const at::Tensor& replace(const std::string& name, at::Tensor stand_in) {
    at::Tensor& slot = model_.parameters().at(name);
    originals_.emplace_back(name, std::exchange(slot, std::move(stand_in)));
    return slot;
  }

 private:
  CausalLM& model_;
  std::vector<std::pair<std::string, at::Tensor>> originals_;
};

}  // namespace

struct LayerGraphs::Device {
  c10::cuda::CUDAStream stream;  // captures run here (a stream of our own: nothing else may use it then)
  at::cuda::MempoolId_t pool;
};

struct LayerGraphs::Bucket {
  int64_t tokens = 0;     // T_b
  int64_t sequences = 0;  // S_cap: cu_seqlens has S_cap + 1 entries
  // The inputs, owned: written at the start of each micro-batch (tails zeroed: pad tokens must be
  // finite, and their output gradient zero).
  at::Tensor x, cos, sin, cu_seqlens, grad_top;
  struct Layer {
    std::unique_ptr<at::cuda::CUDAGraph> forward, backward;
    at::Tensor out, grad_x;          // [1, T_b, H], in the pool (aliases)
    std::vector<at::Tensor> grads;   // of trained_[layer], in the pool (aliases; undefined: unused)
  };
  std::vector<Layer> layers;  // [first_layer_, layers_)
};

LayerGraphs::LayerGraphs(CausalLM& model, std::function<void(int64_t layer)> weights_ready)
    : model_(model), weights_ready_(std::move(weights_ready)) {
  const ModelConfig& config = model_.config();
  layers_ = config.num_hidden_layers;
  first_layer_ = model_.first_trained_layer();
  recompute_ = model_.gradient_checkpointing();
  model_.set_lora_casts(false);
  trained_.resize(static_cast<size_t>(layers_));
  trained_names_.resize(static_cast<size_t>(layers_));
  for (const auto& [name, t] : model_.parameters()) {
    const int64_t layer = decoder_layer_of(name);
    if (layer < 0 || !t.requires_grad()) continue;
    trained_[layer].push_back(t);
    trained_names_[layer].emplace_back(name, 0);
  }
  for (const auto& [module, adapter] : model_.lora()) {
    const int64_t layer = decoder_layer_of(module);
    PDSD_CHECK(layer >= 0, "cuda_graphs: LoRA adapter '", module, "' is not in a decoder layer");
    trained_[layer].push_back(adapter.a);
    trained_[layer].push_back(adapter.b);
    trained_names_[layer].emplace_back(module, 1);
    trained_names_[layer].emplace_back(module, 2);
  }
  for (const auto& tensors : trained_) {
    trained_address_.emplace_back();
    for (const auto& t : tensors) trained_address_.back().push_back(t.data_ptr());
  }
  // The device of the layers' weights (under ZeRO-3 the outer unit, lm_head with it, is not whole now).
  at::Device device = at::kCPU;
  for (const auto& [name, t] : model_.parameters()) {
    if (t.defined() && decoder_layer_of(name) >= 0) {
      device = t.device();
      break;
    }
  }
  PDSD_CHECK(device.is_cuda(), "cuda_graphs: the model is on ", device.str(), ", not on a GPU");
  // The worker's GPU need not be the current device (a rank runs on cuda:<local rank>).
  c10::cuda::CUDAGuard on_device(device.index());
  cudaStream_t stream = nullptr;
  C10_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  device_ = std::make_unique<Device>(Device{c10::cuda::getStreamFromExternal(stream, device.index()),
                                            at::cuda::graph_pool_handle()});
}

LayerGraphs::~LayerGraphs() {
  model_.set_layer_runner(nullptr, nullptr);  // the model outlives this; its runner must not
  current_ = nullptr;
  buckets_.clear();  // the graphs first, then the stream they were captured on
  if (device_) {
    c10::cuda::CUDAGuard on_device(device_->stream.device_index());
    cudaStreamSynchronize(device_->stream.stream());
    cudaStreamDestroy(device_->stream.stream());
  }
}

CausalLM::LayerRunner LayerGraphs::runner() {
  return [this](int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                const AttentionLayout& layout) { return run(layer, x, cos, sin, layout); };
}

void LayerGraphs::check_trained_tensors_unmoved() const {
  // The graphs read weights and adapters where they were at capture; the optimizer updates them in
  // place. Anything that replaced or moved them (a reload into new tensors) would leave the graphs
  // reading stale memory, so it is an error here rather than silently wrong gradients.
  for (int64_t layer = first_layer_; layer < layers_; ++layer) {
    for (size_t i = 0; i < trained_[layer].size(); ++i) {
      const auto& [name, part] = trained_names_[layer][i];
      const at::Tensor& now = part == 0 ? model_.parameters().at(name)
                              : part == 1 ? model_.lora().at(name).a
                                          : model_.lora().at(name).b;
      PDSD_CHECK(now.unsafeGetTensorImpl() == trained_[layer][i].unsafeGetTensorImpl() &&
                     now.data_ptr() == trained_address_[layer][i],
                 "cuda_graphs: '", name, part == 0 ? "" : part == 1 ? ".lora_A" : ".lora_B",
                 "' was replaced or moved since the graphs of layer ", layer, " were captured");
    }
  }
}

std::tuple<int64_t, int64_t> LayerGraphs::bucket_key(int64_t tokens, int64_t sequences) {
  int64_t cap = 8;
  while (cap < sequences + 1) cap *= 2;  // room for the pad sequence
  return {graph_token_bucket(tokens), cap};
}

LayerGraphs::Bucket& LayerGraphs::bucket_for(int64_t tokens, int64_t sequences) {
  const auto key = bucket_key(tokens, sequences);
  auto& slot = buckets_[key];
  if (!slot) {
    slot = std::make_unique<Bucket>();
    slot->tokens = std::get<0>(key);
    slot->sequences = std::get<1>(key);
    const auto start = std::chrono::steady_clock::now();
    capture(*slot);
    capture_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return *slot;
}

double LayerGraphs::capture_ahead(const std::vector<std::pair<int64_t, int64_t>>& micro_batches) {
  std::map<std::tuple<int64_t, int64_t>, std::pair<int64_t, int64_t>, std::greater<>> wanted;  // by bucket, largest first
  for (const auto& [tokens, sequences] : micro_batches) {
    wanted.emplace(bucket_key(tokens, sequences), std::make_pair(tokens, sequences));
  }
  const double before = capture_seconds_;
  for (const auto& [key, shape] : wanted) bucket_for(shape.first, shape.second);
  return capture_seconds_ - before;
}

void LayerGraphs::capture(Bucket& b) {
  const ModelConfig& config = model_.config();
  const at::Device device = device_->stream.device();
  c10::cuda::CUDAGuard on_device(device.index());
  const auto compute = at::TensorOptions().dtype(model_.compute_dtype()).device(device);
  b.x = at::zeros({1, b.tokens, config.hidden_size}, compute);
  b.grad_top = at::zeros({1, b.tokens, config.hidden_size}, compute);
  b.cos = at::zeros({1, b.tokens, config.head_dim}, compute);
  b.sin = at::zeros({1, b.tokens, config.head_dim}, compute);
  b.cu_seqlens = at::full({b.sequences + 1}, b.tokens, at::TensorOptions().dtype(at::kInt).device(device));
  b.cu_seqlens.narrow(0, 0, 1).zero_();  // one sequence of every token until the first micro-batch fills it
  b.layers.resize(static_cast<size_t>(layers_ - first_layer_));

  c10::cuda::CUDAStream main = c10::cuda::getCurrentCUDAStream(device.index());
  c10::cuda::CUDAStream side = device_->stream;
  if (weights_ready_) {  // ordered on the main stream, which the capture stream waits for next
    for (int64_t layer = first_layer_; layer < layers_; ++layer) weights_ready_(layer);
  }
  at::cuda::CUDAEvent inputs_ready;
  inputs_ready.record(main);
  inputs_ready.block(side);
  AttentionLayout layout;
  layout.cu_seqlens = b.cu_seqlens;
  layout.max_seqlen = b.tokens;
  // Trained tensors that are not leaves (ZeRO-3's weights: views of a layer's flat leaf, made on
  // another stream) are captured through leaves of their own over the same memory: the gradient is
  // then taken there, and autograd does not hand it to the views' nodes, which would make the stream
  // they were made on wait for the capture. The replays' gradients still reach the views.
  std::vector<std::vector<at::Tensor>> captured_inputs = trained_;
  StandIns stand_ins(model_);
  for (int64_t layer = first_layer_; layer < layers_; ++layer) {
    for (size_t i = 0; i < trained_[layer].size(); ++i) {
      const at::Tensor& t = trained_[layer][i];
      if (t.is_leaf()) continue;
      PDSD_CHECK(trained_names_[layer][i].second == 0, "cuda_graphs: LoRA adapter '", trained_names_[layer][i].first,
                 "' is not a leaf");
      captured_inputs[layer][i] = stand_ins.replace(trained_names_[layer][i].first, t.detach().requires_grad_(true));
    }
  }
  auto inputs_of = [&captured_inputs](int64_t layer, const at::Tensor& leaf) {
    std::vector<at::Tensor> inputs{leaf};
    inputs.insert(inputs.end(), captured_inputs[layer].begin(), captured_inputs[layer].end());
    return inputs;
  };
  // Captured as training runs (LoRA dropout on), whenever the capture happens: before step 1 the
  // model is not yet in training mode.
  const bool was_training = model_.training();
  model_.set_training(true);
  {
    c10::cuda::CUDAStreamGuard on_side(side);
    at::AutoGradMode grad_mode(true);
    // One eager pass on the capture stream first: libraries set themselves up lazily per stream
    // (cuBLAS workspaces), which must not happen inside a capture.
    {
      at::Tensor leaf = b.x.detach().requires_grad_(true);
      at::Tensor out = model_.layer_forward(first_layer_, leaf, b.cos, b.sin, layout);
      torch::autograd::grad({out}, inputs_of(first_layer_, leaf), {b.grad_top}, /*retain_graph=*/false,
                            /*create_graph=*/false, /*allow_unused=*/true);
    }
    side.synchronize();
    const size_t n = b.layers.size();
    std::vector<at::Tensor> outs(n), leaves(n), grads_x(n);
    std::vector<std::vector<at::Tensor>> grads(n);
    auto input_of = [&](size_t i) { return (i == 0 ? b.x : outs[i - 1]).detach(); };
    for (size_t i = 0; i < n; ++i) {
      const int64_t layer = first_layer_ + static_cast<int64_t>(i);
      auto& l = b.layers[i];
      l.forward = std::make_unique<at::cuda::CUDAGraph>();
      l.forward->capture_begin(device_->pool, cudaStreamCaptureModeThreadLocal);
      if (recompute_) {  // as activation checkpointing: the forward keeps nothing but its output
        at::NoGradGuard no_grad;
        outs[i] = model_.layer_forward(layer, input_of(i), b.cos, b.sin, layout);
      } else {
        leaves[i] = input_of(i).requires_grad_(true);
        outs[i] = model_.layer_forward(layer, leaves[i], b.cos, b.sin, layout);
      }
      l.forward->capture_end();
      PDSD_CHECK(outs[i].is_contiguous(), "cuda_graphs: layer ", layer, "'s output is not contiguous");
    }
    for (size_t i = n; i-- > 0;) {
      const int64_t layer = first_layer_ + static_cast<int64_t>(i);
      auto& l = b.layers[i];
      const at::Tensor grad_out = i + 1 < n ? grads_x[i + 1] : b.grad_top;
      l.backward = std::make_unique<at::cuda::CUDAGraph>();
      l.backward->capture_begin(device_->pool, cudaStreamCaptureModeThreadLocal);
      at::Tensor out = outs[i], leaf = leaves[i];
      if (recompute_) {
        leaf = input_of(i).requires_grad_(true);
        out = model_.layer_forward(layer, leaf, b.cos, b.sin, layout);
      }
      grads[i] = torch::autograd::grad({out}, inputs_of(layer, leaf), {grad_out}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
      if (!grads[i][0].defined()) grads[i][0] = at::zeros_like(leaf);
      if (!grads[i][0].is_contiguous()) grads[i][0] = grads[i][0].contiguous();
      grads_x[i] = grads[i][0];
      l.backward->capture_end();
    }
    for (size_t i = 0; i < n; ++i) {
      auto& l = b.layers[i];
      l.out = alias_of(outs[i]);
      l.grad_x = alias_of(grads_x[i]);
      for (size_t k = 1; k < grads[i].size(); ++k) l.grads.push_back(alias_of(grads[i][k]));
    }
    // outs, leaves, grads_x and grads go out of scope here: their memory returns to the pool, where
    // the next bucket's capture may take it (see the header).
  }
  model_.set_training(was_training);
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(main);
}

at::Tensor LayerGraphs::run(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            const AttentionLayout& layout) {
  if (weights_ready_) weights_ready_(layer);
  const bool graphed = layer >= first_layer_ && model_.training() && at::GradMode::is_enabled() &&
                       layout.cu_seqlens.defined() && x.is_cuda();
  if (!graphed) return model_.layer_forward(layer, x, cos, sin, layout);
  if (layer == first_layer_) {
    check_trained_tensors_unmoved();
    PDSD_CHECK(x.dim() == 3 && x.size(0) == 1, "cuda_graphs: a padding-free micro-batch is one row, got ", x.sizes());
    const int64_t tokens = x.size(1), sequences = layout.cu_seqlens.size(0) - 1;
    Bucket& b = bucket_for(tokens, sequences);
    at::NoGradGuard no_grad;
    b.x.narrow(1, 0, tokens).copy_(x);
    b.cos.narrow(1, 0, tokens).copy_(cos);
    b.sin.narrow(1, 0, tokens).copy_(sin);
    if (tokens < b.tokens) {  // pad tokens: finite inputs (another bucket's graphs may have left anything here)
      b.x.narrow(1, tokens, b.tokens - tokens).zero_();
      b.cos.narrow(1, tokens, b.tokens - tokens).zero_();
      b.sin.narrow(1, tokens, b.tokens - tokens).zero_();
    }
    b.cu_seqlens.narrow(0, 0, sequences + 1).copy_(layout.cu_seqlens);
    b.cu_seqlens.narrow(0, sequences + 1, b.sequences - sequences).fill_(b.tokens);  // the pad sequence, then empty ones
    current_ = &b;
    tokens_ = tokens;
  } else {
    PDSD_CHECK(current_ != nullptr && x.size(1) == tokens_, "cuda_graphs: layer ", layer,
               " runs before layer ", first_layer_, " of the same micro-batch");
    const at::Tensor& expected = current_->layers[layer - first_layer_ - 1].out;
    if (x.data_ptr() != expected.data_ptr()) {  // not the previous graph's output: put it where the graph reads
      at::NoGradGuard no_grad;
      expected.narrow(1, 0, tokens_).copy_(x);
    }
  }
  return GraphedLayer::apply(x, at::TensorList(trained_[layer]), reinterpret_cast<int64_t>(this), layer);
}

at::Tensor LayerGraphs::forward(int64_t layer, const at::Tensor& /*x: already where the graph reads it*/) {
  auto& l = current_->layers[layer - first_layer_];
  l.forward->replay();
  ++replays_;
  return first_tokens(l.out, tokens_);
}

std::vector<at::Tensor> LayerGraphs::backward(int64_t layer, const at::Tensor& grad_out) {
  PDSD_CHECK(current_ != nullptr, "cuda_graphs: backward of layer ", layer, " without its forward");
  Bucket& b = *current_;
  const size_t i = static_cast<size_t>(layer - first_layer_);
  const at::Tensor& expected = i + 1 < b.layers.size() ? b.layers[i + 1].grad_x : b.grad_top;
  // grad_out is always defined: autograd hands a custom function zeros for an unused output.
  if (grad_out.data_ptr() != expected.data_ptr()) {
    expected.narrow(1, 0, tokens_).copy_(grad_out);
    if (tokens_ < b.tokens) expected.narrow(1, tokens_, b.tokens - tokens_).zero_();  // pad tokens add nothing
  }
  auto& l = b.layers[i];
  l.backward->replay();
  ++replays_;
  std::vector<at::Tensor> grads{first_tokens(l.grad_x, tokens_)};
  // The aliases themselves, which this object also holds: AccumulateGrad then copies them into
  // .grad instead of adopting them (the next replay rewrites their memory).
  grads.insert(grads.end(), l.grads.begin(), l.grads.end());
  return grads;
}

#else  // no CUDA in this build

struct LayerGraphs::Device {};
struct LayerGraphs::Bucket {};

LayerGraphs::LayerGraphs(CausalLM& model, std::function<void(int64_t)>) : model_(model) {
  throw InputError("cuda_graphs: this build of pdsd has no CUDA (configure with -DPDSD_CUDA=ON)");
}
LayerGraphs::~LayerGraphs() = default;
CausalLM::LayerRunner LayerGraphs::runner() { return {}; }
double LayerGraphs::capture_ahead(const std::vector<std::pair<int64_t, int64_t>>&) { return 0; }
at::Tensor LayerGraphs::forward(int64_t, const at::Tensor&) { return {}; }
std::vector<at::Tensor> LayerGraphs::backward(int64_t, const at::Tensor&) { return {}; }

#endif

}  // namespace pdsd
