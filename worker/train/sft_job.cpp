#include "worker/train/sft_job.h"

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/cuda_graphs_choice.h"
#include "common/error.h"
#include "common/host_threads.h"
#include "common/log.h"
#include "worker/data/chat_template.h"
#include "worker/dist/collectives.h"
#include "worker/data/dataset_loader.h"
#include "worker/export/model_export.h"
#include "worker/model/causal_lm.h"
#include "worker/model/layer_graphs.h"
#include "worker/model_weights.h"
#include "worker/tokenizer/tokenizer.h"
#include "worker/train/batch_plan.h"
#include "worker/train/causal_lm_loss.h"
#include "worker/train/gradient_buckets.h"
#include "worker/train/checkpoint.h"
#include "worker/train/save_signals.h"
#include "worker/train/sharded_adamw.h"
#include "worker/train/step_profiler.h"
#include "worker/train/trainer.h"
#include "worker/train/zero3_parameters.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// The EOS token id from config.json's eos_token_id (an id or a list: the first).
int32_t eos_id_of(const std::string& model_dir) {
  std::ifstream in(fs::path(model_dir) / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) return j["eos_token_id"].get<int32_t>();
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array() && !j["eos_token_id"].empty()) {
    return j["eos_token_id"][0].get<int32_t>();
  }
  return -1;
}

// transformers' Trainer exempts biases and norm weights from weight decay.
bool decays(const std::string& name) {
  return name.find(".bias") == std::string::npos && name.find("norm.weight") == std::string::npos;
}

// Which base weights train: all (full), the last / first N layers (freeze), none (lora).
bool base_weight_trains(const JobConfig& c, const ModelConfig& m, const std::string& name) {
  if (c.finetuning_type == "full") return true;
  if (c.finetuning_type == "lora") return false;
  const int64_t layer = decoder_layer_of(name), n = c.freeze_trainable_layers;
  if (layer < 0) return false;  // embeddings, final norm and lm_head stay frozen, as LLaMA-Factory's default
  return n > 0 ? layer >= m.num_hidden_layers - n : layer < -n;
}

// What checkpoints record besides tensors (checkpoint.h): the settings that change the math get a
// hash, and a resume warns when they differ. The global batch, not its split over ranks, is what
// counts: resuming at another world size keeps the math when it keeps the global batch.
CheckpointContext checkpoint_context(const JobConfig& c, const WorkerEnv& env, dist::Collectives* collectives,
                                     at::Device device, const LoraSettings& lora, const LrSchedule& schedule,
                                     int64_t steps_per_epoch) {
  CheckpointContext ctx{.output_dir = c.output_dir, .rank = env.rank, .world_size = env.world_size,
                        .finetuning_type = c.finetuning_type, .save_total_limit = c.save_total_limit, .device = device};
  if (collectives != nullptr && env.world_size > 1) {
    ctx.all_max = [collectives](int64_t v) {
      at::Tensor t = at::tensor({v}, at::kLong);
      collectives->all_reduce(t, dist::ReduceOp::max);
      return t.item<int64_t>();
    };
  }
  ctx.base_model = fs::absolute(c.model_name_or_path).string();
  if (c.finetuning_type == "lora") {
    ctx.lora = {{"r", lora.rank}, {"lora_alpha", lora.alpha}, {"lora_dropout", lora.dropout}, {"target", lora.targets}};
  }
  ctx.scheduler = {{"type", schedule.type}, {"peak_lr", schedule.peak}, {"warmup_steps", schedule.warmup_steps},
                   {"total_steps", schedule.total_steps}};
  ctx.settings = {{"model_name_or_path", ctx.base_model}, {"dataset", c.dataset}, {"dataset_dir", c.dataset_dir},
                  {"template", c.template_name}, {"cutoff_len", c.cutoff_len}, {"max_samples", c.max_samples},
                  {"val_size", c.val_size}, {"packing", c.packing}, {"train_on_prompt", c.train_on_prompt},
                  {"finetuning_type", c.finetuning_type}, {"lora", ctx.lora}, {"freeze_trainable_layers", c.freeze_trainable_layers},
                  {"seed", c.seed}, {"global_batch_size", c.per_device_train_batch_size * c.gradient_accumulation_steps * env.world_size},
                  {"learning_rate", c.learning_rate}, {"lr_scheduler_type", c.lr_scheduler_type},
                  {"warmup_steps", schedule.warmup_steps}, {"total_steps", schedule.total_steps},
                  {"weight_decay", c.weight_decay}, {"adam_beta1", c.adam_beta1}, {"adam_beta2", c.adam_beta2},
                  {"adam_epsilon", c.adam_epsilon}, {"max_grad_norm", c.max_grad_norm}, {"bf16", c.bf16}, {"fp16", c.fp16}};
  ctx.steps_per_epoch = steps_per_epoch;
  return ctx;
}

// A resumed run appends to trainer_log.jsonl: first drop what the interrupted run logged after its checkpoint.
void keep_log_through(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      // a line cut short by the crash
    }
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

}  // namespace

SftJobResult run_sft_job(const JobConfig& config, const WorkerEnv& env, dist::Collectives* collectives,
                         const ProgressCallback& on_progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool lead = env.rank == 0;
  PDSD_CHECK(env.world_size == 1 || collectives != nullptr, "world size ", env.world_size,
             " needs a collectives backend");
  at::manual_seed(config.seed);
  if (lead && config.metrics_port != 0) {
    log::warn("metrics_port ", config.metrics_port, ": the Prometheus endpoint is not built yet; no metrics are served");
  }

  // One GPU per local rank when this build and machine have them (ranks share GPUs round-robin when
  // there are more ranks than GPUs); else the CPU.
  const int gpus = at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().deviceCount()) : 0;
  const at::Device device = gpus > 0 ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank % gpus))
                                     : at::Device(at::kCPU);
  if (auto threads = host_operator_threads(device.is_cuda(), std::getenv("OMP_NUM_THREADS"),
                                           std::getenv(kOmpThreadsDefaultedVariable))) {
    at::set_num_threads(*threads);
    if (env.local_rank == 0) log::info("CPU operators on ", *threads, " thread per worker (it drives a GPU; OMP_NUM_THREADS overrides)");
  }

  // Model.
  ModelConfig model_config = read_model_config(config.model_name_or_path);
  ModelWeights weights = load_model_weights(config.model_name_or_path, model_config);
  const at::ScalarType compute = config.bf16 ? at::kBFloat16 : (config.fp16 ? at::kHalf : at::kFloat);
  std::map<std::string, at::Tensor> params;
  std::vector<TrainableParameter> trainable;
  SftJobResult result;
  // ZeRO-3 (zero3_parameters.h) never makes a weight whole on the device: the model starts on the
  // memory-mapped views and each rank copies out its shards.
  const bool zero3 = config.zero_stage == 3;
  // ZeRO-2 over several ranks keeps the fp32 masters only in each rank's shard (sharded_adamw.h):
  // the whole trainable weights every rank computes with are then kept in the compute dtype too.
  const bool low_precision_replicas = config.zero_stage == 2 && env.world_size > 1 && compute != at::kFloat;
  for (const auto& [name, view] : weights.tensors) {
    const bool trains = base_weight_trains(config, model_config, name);
    if (zero3) {
      result.trainable_parameters += trains ? view.numel() : 0;
      result.total_parameters += view.numel();
      params.emplace(name, view);
      continue;
    }
    // Trainable weights get fp32 master copies; frozen ones are kept in the compute dtype.
    const at::ScalarType dtype = trains && !low_precision_replicas ? at::kFloat : compute;
    at::Tensor t = view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
    if (trains) {
      t.requires_grad_(true);
      trainable.push_back({name, t, decays(name)});
      result.trainable_parameters += t.numel();
    }
    result.total_parameters += t.numel();
    params.emplace(name, t);
  }
  int64_t parameter_bytes = 0;  // whole weights on every rank (without ZeRO-3)
  for (const auto& [name, t] : params) parameter_bytes += zero3 ? 0 : t.nbytes();
  CausalLM model(model_config, params, compute);
  model.set_gradient_checkpointing(config.gradient_checkpointing);
  LoraSettings lora_settings;
  if (config.finetuning_type == "lora") {
    lora_settings = {.rank = config.lora_rank,
                     .alpha = config.lora_alpha > 0 ? config.lora_alpha : 2.0 * static_cast<double>(config.lora_rank),
                     .dropout = config.lora_dropout,
                     .targets = split_list(config.lora_target)};
    model.lora() = make_lora_adapters(model_config, lora_settings, config.seed);
    for (auto& [module, adapter] : model.lora()) {
      adapter.a = adapter.a.detach().to(device).requires_grad_(true);
      adapter.b = adapter.b.detach().to(device).requires_grad_(true);
      trainable.push_back({module + ".lora_A", adapter.a, true});
      trainable.push_back({module + ".lora_B", adapter.b, true});
      result.trainable_parameters += adapter.a.numel() + adapter.b.numel();
    }
  }

  // Data.
  const std::string tokenizer_path = (fs::path(config.model_name_or_path) / "tokenizer.json").string();
  Tokenizer tokenizer = Tokenizer::from_file(tokenizer_path);
  const int32_t eos_id = eos_id_of(config.model_name_or_path);
  const std::string template_name = config.template_name.empty()
                                        ? data::default_template_for_model(model_config.model_type, model_config.vocab_size)
                                        : config.template_name;
  data::ChatTemplate chat = data::ChatTemplate::named(template_name, eos_id >= 0 ? tokenizer.decode({eos_id}) : "");
  data::LoadedData loaded = data::load_datasets(data::DataOptions::from_job_config(config));
  result.skipped_records = static_cast<int64_t>(loaded.skipped());
  std::vector<data::Conversation> conversations = std::move(loaded.conversations);
  std::vector<data::Conversation> held_out;
  if (config.val_size > 0) {
    const size_t n = config.val_size < 1 ? static_cast<size_t>(config.val_size * static_cast<double>(conversations.size()))
                                         : static_cast<size_t>(config.val_size);
    PDSD_CHECK(n < conversations.size(), "val_size ", config.val_size, " leaves no training sample out of ",
               conversations.size());
    std::mt19937_64 rng(static_cast<uint64_t>(config.seed));
    std::shuffle(conversations.begin(), conversations.end(), rng);
    held_out.assign(conversations.end() - static_cast<std::ptrdiff_t>(n), conversations.end());
    conversations.resize(conversations.size() - n);
  }
  auto encode = [&](std::string_view text) { return tokenizer.encode(text, /*add_special_tokens=*/false); };
  SftExampleOptions example_options{.cutoff_len = config.cutoff_len, .train_on_prompt = config.train_on_prompt,
                                    .eos_id = eos_id, .append_eos = chat.appends_eos_after_last_response()};
  auto to_examples = [&](const std::vector<data::Conversation>& convs) {
    std::vector<SftExample> out;
    for (const auto& c : convs) {
      SftExample e = build_sft_example(data::merge_adjacent(chat.segments(c)), encode, example_options);
      bool has_label = std::any_of(e.labels.begin(), e.labels.end(), [](int32_t l) { return l != kIgnoreIndex; });
      if (has_label && e.input_ids.size() > 1) out.push_back(std::move(e));  // cut to nothing trainable: dropped
    }
    return out;
  };
  std::vector<SftExample> train_examples = to_examples(conversations), eval_examples = to_examples(held_out);
  result.train_samples = static_cast<int64_t>(train_examples.size());
  result.eval_samples = static_cast<int64_t>(eval_examples.size());
  // Padding-free micro-batches need variable-length flash attention: CUDA, bf16/fp16 compute.
  const bool padding_free = config.padding_free && device.is_cuda() && compute != at::kFloat &&
                            flash_attention_supported(device, model_config.head_dim);
  BatchingOptions batching{.batch_size = config.per_device_train_batch_size, .packing = config.packing,
                           .padding_free = padding_free,
                           .cutoff_len = config.cutoff_len, .seed = static_cast<uint64_t>(config.seed),
                           .world_size = env.world_size, .rank = env.rank,
                           .gradient_accumulation_steps = config.gradient_accumulation_steps, .pad_id = 0};
  BatchPlan plan(std::move(train_examples), batching);
  // CUDA graphs of the decoder layers (cuda_graphs: auto takes them for host-bound models).
  CudaGraphsFacts graph_facts{.on_gpu = device.is_cuda(), .padding_free = padding_free};
  {
    std::map<int64_t, int64_t> layer_numel;
    for (const auto& [name, view] : weights.tensors) {
      if (const int64_t layer = decoder_layer_of(name); layer >= 0) layer_numel[layer] += view.numel();
    }
    const auto element = static_cast<int64_t>(c10::elementSize(compute));
    for (const auto& [layer, numel] : layer_numel) {
      const int64_t padded = (numel + env.world_size - 1) / env.world_size * env.world_size;  // as ZeRO-3 lays it out
      graph_facts.layer_bytes = std::max(graph_facts.layer_bytes, numel * element);
      graph_facts.all_layers_bytes += padded * element;
    }
  }
  const CudaGraphsChoice graphs = choose_cuda_graphs(config, graph_facts);
  if (lead && config.cuda_graphs == "auto" && graph_facts.on_gpu) {
    log::info("cuda_graphs auto: ", graphs.on ? "on" : "off", " (", graphs.why, ")");
  }
  const int64_t total_steps = plan.total_steps(config.num_train_epochs, config.max_steps);
  if (lead) {
    log::info("device ", device.str(), (compute == at::kBFloat16 ? ", bf16 compute" : compute == at::kHalf ? ", fp16 compute" : ", fp32 compute"),
              "; ", template_name, " template; ", result.train_samples, " training and ", result.eval_samples,
              " held-out samples (", result.skipped_records, " bad records skipped); ", plan.steps_per_epoch(),
              " optimizer steps per epoch, ", total_steps, " in all; ", result.trainable_parameters, " of ",
              result.total_parameters + (config.finetuning_type == "lora" ? result.trainable_parameters : 0),
              " parameters train (", config.finetuning_type, ")");
  }

  // Train.
  fs::create_directories(config.output_dir);
  TrainerOptions options;
  options.schedule = {.type = config.lr_scheduler_type, .peak = config.learning_rate,
                      .warmup_steps = resolve_warmup_steps(config.warmup_steps, config.warmup_ratio, total_steps),
                      .total_steps = total_steps};
  options.adam = {.beta1 = config.adam_beta1, .beta2 = config.adam_beta2, .eps = config.adam_epsilon,
                  .weight_decay = config.weight_decay};
  options.max_grad_norm = config.max_grad_norm;
  options.logging_steps = config.logging_steps;
  options.log_to_console = lead;
  if (lead) options.log_path = (fs::path(config.output_dir) / "trainer_log.jsonl").string();
  // After a failure pdsd-launch restarts every worker (TORCHELASTIC_RESTART_COUNT > 0): they pick up
  // the newest checkpoint unless the job names one.
  const std::string resume_from =
      env.restart_count > 0 && config.resume_from_checkpoint.empty() ? "auto" : config.resume_from_checkpoint;
  CheckpointContext checkpoints = checkpoint_context(config, env, collectives, device, lora_settings, options.schedule,
                                                     plan.steps_per_epoch());
  const std::string resume_dir = choose_checkpoint(checkpoints, resume_from);
  if (lead && resume_dir.empty() && fs::exists(options.log_path)) fs::remove(options.log_path);  // a resumed run appends
  // The collectives the trainer and ZeRO use; for one process ZeRO's are copies. (Gloo stages GPU
  // tensors through the host itself; NCCL leaves ZeRO-3's prefetching all-gathers running.)
  ShardComm comm{.rank = env.rank, .world_size = env.world_size};
  if (collectives != nullptr && env.world_size > 1) {
    options.all_reduce_sum = [collectives](at::Tensor& t) { collectives->all_reduce(t); };
    comm.reduce_scatter_sum = [collectives](const at::Tensor& out, const at::Tensor& in) { collectives->reduce_scatter(out, in); };
    comm.all_gather = [collectives](const at::Tensor& out, const at::Tensor& in) { collectives->all_gather(out, in); };
    comm.all_gather_async = [collectives](const at::Tensor& out, const at::Tensor& in) {
      return collectives->all_gather_async(out, in);
    };
    comm.reduce_scatter_async = [collectives](const at::Tensor& out, const at::Tensor& in) {
      return collectives->reduce_scatter_async(out, in);
    };
    comm.all_reduce_sum = [collectives](const at::Tensor& t) { collectives->all_reduce(t); };
    comm.gather_memory = [collectives](int64_t numel, const at::TensorOptions& o) { return collectives->gather_memory(numel, o); };
  } else {
    comm.reduce_scatter_sum = [](const at::Tensor& out, const at::Tensor& in) { out.copy_(in); };
    comm.all_gather = [](const at::Tensor& out, const at::Tensor& in) { out.copy_(in); };
    comm.all_gather_async = [](const at::Tensor& out, const at::Tensor& in) {
      out.copy_(in);
      return dist::PendingCollective();
    };
    comm.reduce_scatter_async = [](const at::Tensor& out, const at::Tensor& in) {
      out.copy_(in);
      return dist::PendingCollective();
    };
    comm.all_reduce_sum = [](const at::Tensor&) {};
  }
  // The precision gradients are reduced in (communication_data_type). auto: the gradients' own over
  // NCCL (bf16 or fp16 whole weights under ZeRO-2, ZeRO-3's half-precision layers: half the bytes);
  // over Gloo, fp32 (the CPU gains nothing from bf16, and Gloo sums in the buffer's precision).
  // One process communicates nothing: its gradients keep their own precision whatever the key says.
  std::optional<at::ScalarType> reduce_dtype;
  if (env.world_size > 1) {
    if (config.communication_data_type == "fp32") reduce_dtype = at::kFloat;
    if (config.communication_data_type == "bf16") reduce_dtype = at::kBFloat16;
    if (config.communication_data_type == "auto" && collectives != nullptr && !collectives->reduces_on_gpu()) {
      reduce_dtype = at::kFloat;
    }
  }
  if (lead && collectives != nullptr && env.world_size > 1) {
    log::info("communication_data_type ", config.communication_data_type, ": gradients reduced in ",
              !reduce_dtype ? "the precision they are computed in" : *reduce_dtype == at::kFloat ? "fp32" : "bf16");
  }
  std::unique_ptr<Zero3Parameters> zero3_params;
  if (zero3) {
    int64_t layer_bytes = 0;  // one layer gathered, for zero3_gather_engine auto
    for (const auto& [name, t] : model.parameters()) {
      if (name.rfind("model.layers.0.", 0) == 0) layer_bytes += t.numel() * static_cast<int64_t>(c10::elementSize(compute));
    }
    // cuda_graphs: the layers stay whole where the graphs read them (Zero3Options::resident_layers),
    // gathered by the SMs into memory of their own, not into gather slots.
    bool copy_engines = !graphs.on && gathers_on_copy_engines(config.zero3_gather_engine,
                                                                       collectives != nullptr && collectives->reduces_on_gpu(),
                                                                       env.world_size, layer_bytes);
    std::string auto_declined;  // why auto, choosing the copy engines, could not have them
    if (copy_engines && config.zero3_gather_engine == "auto" && !collectives->agree_on_copy_engines()) {
      copy_engines = false;  // every rank computed the same choice above and asked; all got the same answer
      collectives->gathers_on_copy_engines(&auto_declined);
    }
    const auto keep_bytes = static_cast<int64_t>(config.zero3_keep_gathered_mb * (1 << 20));
    zero3_params = std::make_unique<Zero3Parameters>(
        model, weights.tensors, [&](const std::string& n) { return base_weight_trains(config, model_config, n); }, decays,
        comm, Zero3Options{.compute_dtype = compute, .device = device, .adam = options.adam, .reduce_dtype = reduce_dtype,
                           .copy_engine_gathers = copy_engines,
                           .keep_gathered_bytes = keep_bytes,
                           .gradient_checkpointing = config.gradient_checkpointing,
                           .resident_layers = graphs.on});
    model.set_layer_runner(zero3_params->layer_runner(), [z3 = zero3_params.get()](int64_t layer) { return z3->layer_trains(layer); });
    options.before_forward = [&zero3_params] { zero3_params->gather_outer(); };
    options.after_forward = [&zero3_params] { zero3_params->release_outer(); };
    if (zero3_params->trains_anything()) {
      options.sharded_step = [&zero3_params](double lr, double max_norm) { return zero3_params->step(lr, max_norm); };
      options.sharded_state_bytes = [&zero3_params] { return zero3_params->state_bytes(); };
      options.sharded_state_tensors = [&zero3_params] { return zero3_params->state_tensors(); };
    }
    if (lead && copy_engines && collectives != nullptr && env.world_size > 1) {
      std::string why_not;
      const std::string key = str("zero3_gather_engine ", config.zero3_gather_engine, ": ");
      if (collectives->gathers_on_copy_engines(&why_not)) {
        log::info(key, "layer all-gathers run on the GPUs' copy engines");
      } else if (config.zero3_gather_engine == "copy") {
        log::warn(key, why_not, "; layer all-gathers run as with sm (into fixed gather slots)");
      } else {
        log::info(key, why_not, "; layer all-gathers run on SMs (into fixed gather slots)");
      }
    } else if (lead && config.zero3_gather_engine == "auto" && env.world_size > 1 && !graphs.on) {
      log::info("zero3_gather_engine auto: layer all-gathers run on SMs (",
                !auto_declined.empty() ? auto_declined
                                       : str(layer_bytes >> 20, " MiB per layer, under ", kCopyEngineLayerBytes >> 20,
                                             " MiB, or not over NCCL"),
                ")");
    }
    if (lead && graphs.on) {
      log::info("zero_stage 3 with cuda_graphs: every layer stays whole on each rank (", zero3_params->most_kept_bytes() >> 20,
                " MiB of zero3_keep_gathered_mb ", config.zero3_keep_gathered_mb, ") where the graphs read it; ",
                zero3_params->trains_anything() ? "trainable layers are gathered again in place after each update"
                                                : "gathered once for the job");
    } else if (lead && config.zero3_keep_gathered_mb > 0 && model_config.num_hidden_layers > 0) {
      const int64_t gathered = zero3_params->gathered_layer_bytes();
      const int64_t keep = std::min<int64_t>(model_config.num_hidden_layers, keep_bytes / gathered);
      log::info("zero3_keep_gathered_mb ", config.zero3_keep_gathered_mb, ": ", keep, " of ", model_config.num_hidden_layers,
                " layers (", gathered >> 20, " MiB each) stay whole once gathered, until their weights change");
    }
    if (lead) {
      log::info("zero_stage 3: ", zero3_params->parameter_bytes(), " bytes of weights at rest on this rank (1/",
                env.world_size, " of each layer)",
                graphs.on                         ? ""
                : config.gradient_checkpointing ? "; each layer is gathered for its forward and backward (recomputed there: gradient_checkpointing)"
                                                  : "; each layer is gathered for its forward and backward (not recomputed: "
                                                    "gradient_checkpointing off, autograd keeps the activations)");
    }
  }
  std::unique_ptr<GradientBuckets> buckets;
  if (collectives != nullptr && env.world_size > 1 && config.zero_stage == 0) {
    // DDP: gradients all-reduced bucket by bucket while the step's last backward runs (NCCL overlaps
    // them; Gloo reduces each bucket as it completes), then the sums written back into .grad.
    GradientBuckets::Handlers handlers;
    handlers.reduce_dtype = reduce_dtype;
    handlers.issue = [collectives](size_t, const at::Tensor& flat) { return collectives->all_reduce_async(flat); };
    handlers.complete = [&trainable, &buckets](size_t b, const at::Tensor& flat) {
      int64_t offset = 0;
      for (size_t k : buckets->buckets()[b].params) {
        at::Tensor& t = trainable[k].tensor;
        at::Tensor sum = flat.narrow(0, offset, t.numel()).view_as(t);
        if (t.grad().defined()) {
          t.mutable_grad().copy_(sum);
        } else {
          t.mutable_grad() = sum.to(t.scalar_type()).clone();
        }
        offset += t.numel();
      }
    };
    buckets = std::make_unique<GradientBuckets>(trainable, config.ddp_bucket_cap_mb, 1, std::move(handlers));
    if (lead) log::info("DDP: ", buckets->buckets().size(), " gradient bucket(s) of up to ", config.ddp_bucket_cap_mb, " MB, reduced during backward");
    options.before_backward = [&buckets](bool last) { if (last) buckets->arm(); };
    options.after_backward = [&buckets](bool last) { if (last) buckets->finish(); };
    options.gradients_reduced_in_backward = true;
  }
  std::unique_ptr<ShardedAdamW> sharded;
  if (collectives != nullptr && env.world_size > 1 && config.zero_stage > 0 && !trainable.empty()) {
    // ZeRO-1/2, and ZeRO-3's LoRA adapters (small, kept whole; they follow ZeRO-2): optimizer state
    // sharded, gradients reduce-scattered in buckets during backward.
    sharded = std::make_unique<ShardedAdamW>(
        trainable,
        ShardedAdamWOptions{.adam = options.adam, .stage = std::min<int>(config.zero_stage, 2),
                            .bucket_cap_mb = config.ddp_bucket_cap_mb,
                            .local_gradient_bytes = static_cast<int64_t>(config.zero2_local_gradients_mb * (1 << 20)),
                            .reduce_dtype = reduce_dtype,
                            .full_precision_source = [&weights](const std::string& name) { return weights.tensors.at(name); }},
        comm);
    if (lead && config.zero_stage >= 2 && !sharded->reduces_every_micro_batch()) {
      log::info("zero_stage ", config.zero_stage, ": the gradients of what trains (", sharded->gradient_bytes() >> 20,
                " MiB whole) stay on each rank until a step's last micro-batch: one reduce-scatter per step");
    }
    if (lead && low_precision_replicas) {
      log::info("zero_stage 2: whole weights in ", compute == at::kBFloat16 ? "bf16" : "fp16",
                " on every rank, fp32 masters and AdamW state for 1/", env.world_size, " of them");
    }
    options.before_backward = [&sharded](bool last) { sharded->before_backward(last); };
    options.after_backward = [&sharded](bool last) { sharded->after_backward(last); };
    options.sharded_step = [&sharded](double lr, double max_norm) { return sharded->step(lr, max_norm); };
    options.sharded_state_bytes = [&sharded] { return sharded->state_bytes(); };
    options.sharded_state_tensors = [&sharded] { return sharded->state_tensors(); };
  }
  // The fp32 weights then exist only as each rank's master shard (checkpoints, resume, export).
  const bool masters_only_in_shards = sharded && low_precision_replicas;
  // A copy from pageable host memory makes the host wait until the GPU has drained everything queued
  // before it; from pinned memory it is queued like a kernel (the pinned block is not reused before
  // the copy has run: libtorch's host allocator records the copy's event).
  auto upload = [&](at::Tensor& t) {
    if (!t.defined() || device.is_cpu()) return;
    t = t.pin_memory().to(device, /*non_blocking=*/true);
  };
  auto on_device = [&](std::vector<TrainBatch> batches) {
    for (auto& b : batches) {
      for (at::Tensor* t : {&b.tokens.input_ids, &b.tokens.position_ids, &b.tokens.segment_ids, &b.tokens.cu_seqlens,
                            &b.labels, &b.loss_positions, &b.loss_targets}) {
        upload(*t);
      }
    }
    return batches;
  };
  // How the optimizer state is laid out: per rank under ZeRO. ZeRO-3's trainable weights are never
  // whole: checkpoints see them as meta tensors and save each rank's master shards instead.
  const bool zero3_trains = zero3_params && zero3_params->trains_anything();
  checkpoints.zero_stage = sharded || zero3_trains ? config.zero_stage : 0;
  std::vector<TrainableParameter> checkpointed = zero3_trains ? zero3_params->checkpoint_layout() : trainable;
  if (masters_only_in_shards) {
    // The whole weights are rounded copies: checkpoints keep the fp32 master shards instead, as under
    // ZeRO-3 (meta tensors stand for weights saved only as shards).
    for (auto& p : checkpointed) {
      if (p.tensor.scalar_type() != at::kFloat) p.tensor = at::empty(p.tensor.sizes(), at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
    }
  }
  // Saves: every save_steps, every save_minutes, and when a signal asks (save_signals.h). The ranks
  // agree on what to do at each step through the step's loss all-reduce (StepRecord::request).
  SaveTriggers triggers(config.save_minutes);
  SaveRequest agreed = SaveRequest::none;
  Trainer* trainer_ptr = nullptr;
  options.on_progress = on_progress;
  std::optional<StepProfiler> profiler = StepProfiler::from_env(config.output_dir, env.rank, !device.is_cpu());
  if (profiler) options.on_step_begin = [&profiler](int64_t step) { profiler->before_step(step); };
  options.poll_request = [&triggers] { return static_cast<int64_t>(triggers.poll()); };
  options.on_step_end = [&](const StepRecord& record) {
    const int64_t step = record.step;
    if (profiler) profiler->after_step(step);
    agreed = static_cast<SaveRequest>(record.request);  // agreed by all ranks with the step's loss
    if (step % config.save_steps != 0 && agreed == SaveRequest::none) return;
    SaveOutcome saved = save_checkpoint(checkpoints, step, checkpointed, trainer_ptr->optimizer_state());
    if (saved.saved) triggers.saved(), result.last_checkpoint = saved.dir;
    else ++result.failed_saves;
  };
  options.should_stop = [&] { return agreed == SaveRequest::save_and_stop; };
  // A scheduled save reads the state after its step, and a profile ends with its last step: the next
  // step waits to be queued until then.
  options.settle_after = [&](int64_t step) {
    return step % config.save_steps == 0 || (profiler && step == profiler->last());
  };
  Trainer trainer(model, trainable, options);
  trainer_ptr = &trainer;
  if (const std::string& dir = resume_dir; !dir.empty()) {
    const int64_t step = load_checkpoint(checkpoints, dir, checkpointed, trainer.optimizer_state());
    if (lead) keep_log_through(options.log_path, step);
    if (zero3_params) zero3_params->masters_changed();
    if (masters_only_in_shards) sharded->masters_changed();
    trainer.set_steps_done(step);
    if (lead) log::info("resumed from ", dir, " at step ", step, " of ", total_steps);
  }
  // After any resume (the graphs read the trained tensors where they are at this point).
  std::unique_ptr<LayerGraphs> layer_graphs;
  if (graphs.on) {
    std::function<void(int64_t)> weights_ready;
    if (zero3_params) weights_ready = [z3 = zero3_params.get()](int64_t layer) { z3->wait_for_layer(layer); };
    layer_graphs = std::make_unique<LayerGraphs>(model, std::move(weights_ready));
    model.set_layer_runner(layer_graphs->runner(), [](int64_t) { return false; });  // the model's own tensors say
    // Every micro-batch this rank will train on is known now: capture all their buckets before step 1.
    std::vector<std::pair<int64_t, int64_t>> shapes;
    for (int64_t step = trainer.steps_done(); step < total_steps; ++step) {
      for (const auto& shape : plan.micro_batch_shapes(step)) shapes.emplace_back(shape.tokens, shape.sequences);
    }
    const double seconds = layer_graphs->capture_ahead(shapes);
    if (lead) {
      log::info("cuda_graphs: decoder layers from ", model.first_trained_layer(), " up replay CUDA graphs",
                config.gradient_checkpointing ? " (backward recomputes: gradient_checkpointing)" : "", "; ",
                layer_graphs->buckets_captured(), " token count buckets captured in ", seconds, " s before step 1");
    }
  }
  auto records = trainer.train(total_steps, [&](int64_t step) { return on_device(plan.micro_batches(step)); });
  result.steps = total_steps;
  if (agreed == SaveRequest::save_and_stop && trainer.steps_done() < total_steps) {
    const int sig = stop_signal();
    result.steps = trainer.steps_done();
    result.stopped = str("stopped at step ", trainer.steps_done(), " of ", total_steps, " on ",
                         sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "a peer's stop signal",
                         result.last_checkpoint.empty() ? " (the checkpoint was NOT saved)" : " after saving " + result.last_checkpoint,
                         "; resume with resume_from_checkpoint=auto");
    return result;
  }
  if (records.empty()) {
    // Resuming queued collectives (the masters' gathers) that must finish on every rank before any
    // leaves: see the barrier before the export below.
    if (collectives != nullptr && env.world_size > 1) collectives->barrier();
    throw InputError(str("resume_from_checkpoint: the checkpoint is at step ", trainer.steps_done(), " of ", total_steps,
                         ": nothing is left to train (raise max_steps or num_train_epochs)"));
  }
  result.first_loss = records.front().loss;
  result.final_loss = records.back().loss;
  for (const auto& r : records) result.mean_loss += r.loss / static_cast<double>(records.size());
  double tokens = 0, seconds = 0;
  for (const auto& r : records) tokens += static_cast<double>(r.tokens), seconds += static_cast<double>(r.tokens) / r.tokens_per_s;
  result.tokens_per_s = tokens / std::max(seconds, 1e-9);
  if (!eval_examples.empty()) {
    BatchingOptions eval_batching = batching;
    eval_batching.batch_size = config.per_device_eval_batch_size;
    eval_batching.packing = false;
    eval_batching.world_size = 1, eval_batching.rank = 0, eval_batching.gradient_accumulation_steps = 1;
    result.eval_loss = trainer.evaluate(on_device(BatchPlan(std::move(eval_examples), eval_batching).all_batches()));
  }
  result.runtime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (layer_graphs && lead) {
    log::info("cuda_graphs: ", layer_graphs->buckets_captured(), " token count buckets captured in ",
              layer_graphs->capture_seconds(), " s, ", layer_graphs->replays(), " graph replays");
  }
  // What the keep budget did, read before the export frees the kept layers.
  int64_t zero3_layers_kept = 0, zero3_kept_bytes = 0, zero3_runs_without_recompute = 0;
  if (zero3_params) {
    zero3_layers_kept = zero3_params->most_layers_kept();
    zero3_kept_bytes = zero3_params->most_kept_bytes();
    zero3_runs_without_recompute = zero3_params->runs_without_recompute();
    if (lead && config.zero3_keep_gathered_mb > 0) {
      log::info("zero3: at most ", zero3_layers_kept, " layers kept whole at once (", zero3_kept_bytes >> 20,
                " MiB kept on this rank, a frozen outer unit included); ",
                zero3_runs_without_recompute, " layer runs in training without recompute");
    }
  }

  // Outputs (rank 0; every rank holds the same weights after each synchronised step). Under ZeRO-3
  // every rank takes part in gathering them whole, on the CPU, first.
  // Under ZeRO-2 with bf16 whole weights the export takes the fp32 masters, not their rounded copies.
  // Each phase is timed in the log: a 7B export from ZeRO-2 master shards has taken minutes.
  const auto export_started = std::chrono::steady_clock::now();
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  // A LoRA export is the adapters alone, whole on every rank: nothing to gather. A whole-model export
  // rounds the weights to the model's saved dtype, so they are gathered in it (rounding on the GPU
  // equals rounding on the host; half the bytes cross to the host for bf16).
  std::map<std::string, at::Tensor> whole;
  const bool exports_whole_model = config.finetuning_type != "lora";
  if (exports_whole_model && (zero3_params || masters_only_in_shards)) {
    const at::ScalarType saved_dtype = export_dtype(model_config);
    whole = zero3_params ? zero3_params->gather_full_on_cpu(lead, saved_dtype) : sharded->gather_full_on_cpu(lead, saved_dtype);
  }
  if (lead && !whole.empty()) {
    double gb = 0;
    for (const auto& [name, tensor] : whole) gb += static_cast<double>(tensor.nbytes()) / 1e9;
    log::info("export: gathered ", gb, " GB of weights onto the CPU in ", seconds_since(export_started), " s");
  }
  // Every rank's collectives must be over before any rank moves on to leave. With NCCL a rank's host
  // only queues them (the last step's all-gathers, the gathers above): a rank that exited at once
  // would take its half of the collectives still queued down with it, and the others would wait for
  // them until ddp_timeout (a 7B export from ZeRO-2 shards hung so on 2 GPUs). Rank 0 then writes
  // the export alone.
  if (collectives != nullptr && env.world_size > 1) collectives->barrier();
  for (auto& [name, tensor] : whole) model.parameters()[name] = tensor;
  if (lead) {
    const auto writing_started = std::chrono::steady_clock::now();
    if (config.finetuning_type == "lora") {
      export_peft_adapter(model, lora_settings, fs::absolute(config.model_name_or_path).string(), config.output_dir);
      result.artifact = "PEFT adapter (adapter_model.safetensors, adapter_config.json)";
    } else {
      export_hf_model(model, config.model_name_or_path, config.output_dir, "",
                      static_cast<int64_t>(config.export_size * 1e9));
      result.artifact = "Hugging Face model dir (model.safetensors, config.json, tokenizer)";
    }
    log::info("export: wrote ", config.output_dir, " in ", seconds_since(writing_started), " s");
    nlohmann::json all = {{"epoch", static_cast<double>(total_steps) / static_cast<double>(plan.steps_per_epoch())},
                          {"global_step", total_steps},
                          {"train_loss", result.mean_loss},  // transformers: the mean over all steps
                          {"train_first_loss", result.first_loss},
                          {"train_final_loss", result.final_loss},
                          {"train_runtime", result.runtime_s},
                          {"train_samples", result.train_samples},
                          {"train_tokens_per_second", result.tokens_per_s},
                          {"skipped_records", result.skipped_records},
                          {"trainable_parameters", result.trainable_parameters},
                          {"world_size", env.world_size},
                          {"zero_stage", config.zero_stage},
                          {"optimizer_state_bytes_per_rank", trainer.optimizer_state_bytes()},
                          {"checkpoint_save_failures", result.failed_saves},
                          {"parameter_bytes_per_rank", zero3_params ? zero3_params->parameter_bytes() : parameter_bytes},
                          {"cuda_graphs", graphs.on}};
    if (zero3_params) {  // zero3_keep_gathered_mb: whole layers held beside the shards (the most at once)
      all["zero3_layers_kept"] = zero3_layers_kept;
      all["zero3_kept_layer_bytes_per_rank"] = zero3_kept_bytes;
      all["zero3_layer_runs_without_recompute"] = zero3_runs_without_recompute;
    }
    if (result.eval_loss >= 0) all["eval_loss"] = result.eval_loss, all["eval_samples"] = result.eval_samples;
    std::ofstream(fs::path(config.output_dir) / "all_results.json") << all.dump(2) << "\n";
    std::ofstream(fs::path(config.output_dir) / "resolved_config.yaml") << config.to_yaml();
  }
  return result;
}

}  // namespace pdsd
