"""Stable Diffusion v1.4 for the Stable Diffusion chapter: loading, generation, the paper's probe,
Wen et al.'s detector and representation steering, with one code path for two models.

* The real model, ``CompVis/stable-diffusion-v1-4`` through diffusers (:func:`load_sd`): fp16 on a
  CUDA GPU, DDIM scheduler, safety checker off, as in the official code
  (``2-Application/generate_utils.py``).
* A tiny random-weight Stable Diffusion stack built in code (:func:`tiny_pipeline`), for CI and
  readers without a GPU or a network. Its numbers carry no scientific meaning; it exercises the
  same functions end to end.

Images are (n, 3, H, W) float32 in [-1, 1] throughout, as in the rest of the book.

The probe (:func:`probe_representations`) follows the official ``rep_extraction_utils.py``: VAE
encode the image, add noise at training timestep 10, one UNet pass with the empty prompt, read the
post-norm2 SiLU of ``up_blocks.0.resnets.*`` (:func:`utils.representations.capture_post_norm2`),
max-pool over space. Steering follows ``SD_steering.ipynb``: spatial-mean pooled outputs of
``up_blocks.0.resnets.0-2`` and ``up_blocks.1.resnets.0-1``, references probed at t = 10 with their
prompt, 40 DDIM steps, steering in the last 20 except the final 2.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from .checks import as_float_tensor, check_positive_int
from .representations import capture, capture_post_norm2, resnet_names
from .steering import mean_difference, steer

SD_MODEL_ID = "CompVis/stable-diffusion-v1-4"
PROBE_TIMESTEP = 10                     # the official check_timestep
PROBE_BLOCK = "up_blocks.0"             # the official probe reads up_blocks.0.resnets.{0,1,2}
PROBE_LAYER = "up_blocks.0.resnets.2"   # the last of them: the detector's default
STEER_LAYERS = ("up_blocks.0.resnets.0", "up_blocks.0.resnets.1", "up_blocks.0.resnets.2",
                "up_blocks.1.resnets.0", "up_blocks.1.resnets.1")
GENERATION_DEFAULTS = {"steps": 50, "guidance": 7.5}
STEERING_SCHEDULE = {"steps": 40, "last": 20, "skip_final": 2}
ALPHAS = (0.0, 0.2, 0.3, 0.4, 0.5)


class SDUnavailableError(RuntimeError):
    """Stable Diffusion cannot be loaded here; the message says what is missing (GPU, network)."""


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def _hub_reachable(timeout: float = 3.0) -> str | None:
    from .data import _probe
    return _probe("huggingface.co", 443, timeout)


def load_sd(model_id: str = SD_MODEL_ID, *, revision: str | None = None, device: str = "cuda",
            dtype: torch.dtype | None = None):
    """Load Stable Diffusion through diffusers, as the official code does: DDIM scheduler, no
    safety checker, fp16 on CUDA. Weights are read as safetensors only (no pickle).

    Raises :class:`SDUnavailableError` naming what is missing: a CUDA GPU (for ``device="cuda"``),
    or the network (huggingface.co) when the weights are not in the local cache.
    """
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"model_id must be a non-empty string, got {model_id!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SDUnavailableError(
            "Stable Diffusion v1.4 needs a CUDA GPU and none is available here. In Colab choose "
            "Runtime > Change runtime type > T4 GPU; anywhere else, run the chapter in smoke mode "
            "(utils.sd.tiny_pipeline), which needs neither a GPU nor a network.")
    if dtype is None:
        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    kwargs = dict(revision=revision, torch_dtype=dtype, safety_checker=None,
                  requires_safety_checker=False, use_safetensors=True)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(model_id, local_files_only=True, **kwargs)
    except Exception:                                     # noqa: BLE001 - not cached: download
        why = _hub_reachable()
        if why is not None:
            raise SDUnavailableError(
                f"Cannot download {model_id}: the network is unreachable (huggingface.co: {why}) "
                f"and the weights are not in the Hugging Face cache. Run the chapter where the "
                f"internet is available (for example Colab), or in smoke mode.") from None
        pipe = StableDiffusionPipeline.from_pretrained(model_id, **kwargs)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _tiny_tokenizer():
    """A byte-level CLIP tokenizer built in code: every byte is a token (no merges)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer
    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)   # transformers >= 5
    return tok, vocab


def tiny_pipeline(seed: int = 0, image_size: int = 16):
    """A random-weight Stable Diffusion stack built in code (smoke mode), on the CPU, float32.

    Same classes and module names as SD v1.4 where the chapter hooks them: ``up_blocks.0`` is an
    ``UpBlock2D`` with three resnets and ``up_blocks.1`` a cross-attention block, so
    :data:`PROBE_LAYER` and :data:`STEER_LAYERS` exist. Images are ``image_size`` pixels square,
    latents ``image_size // 2`` (the VAE downsamples by 2, SD v1.4's by 8).
    """
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel
    image_size = check_positive_int(image_size, "image_size")
    if image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
    torch.manual_seed(int(seed))
    tok, vocab = _tiny_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    unet = UNet2DConditionModel(
        sample_size=image_size // 2, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), latent_channels=4,
        norm_num_groups=8, sample_size=image_size)
    # SD v1.4's scheduler configuration
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cpu")


def _device_dtype(pipe):
    p = next(pipe.unet.parameters())
    return p.device, p.dtype


# ---------------------------------------------------------------------------------------------
# prompts, images, latents
# ---------------------------------------------------------------------------------------------
def _check_prompts(prompts, name="prompts") -> list:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{name} must be a non-empty list of strings")
    return prompts


@torch.no_grad()
def encode_prompts(pipe, prompts) -> torch.Tensor:
    """CLIP text embeddings of ``prompts`` (n strings; "" is the empty prompt) -> (n, 77, D)."""
    prompts = _check_prompts(prompts)
    device, dtype = _device_dtype(pipe)
    ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(device)
    return pipe.text_encoder(ids)[0].to(dtype)


def _check_images(images) -> torch.Tensor:
    x = as_float_tensor(images, "images", ndim=4).float()
    if x.shape[1] != 3:
        raise ValueError(f"images must have 3 channels (n, 3, H, W), got shape {tuple(x.shape)}")
    if x.min() < -1.001 or x.max() > 1.001:
        raise ValueError("images must lie in [-1, 1]")
    return x


# Offsets that keep the noises of one image independent: generation seeds stay below 10**7
# (the experiment uses 1000 * prompt + seed), the VAE sample, the probe noise and the steering
# references' noise are drawn from seed + one of these.
VAE_OFFSET, PROBE_OFFSET, REFERENCE_OFFSET = 10**7, 2 * 10**7, 3 * 10**7


def _per_image_noise(shape, seeds, offset: int) -> torch.Tensor:
    """(n, *shape) standard normal noise, image k drawn from its own generator seeded
    ``seeds[k] + offset``: results do not depend on batching or on sharding across processes."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s) + offset))
                        for s in seeds])


def _image_seeds(n: int, seeds, seed: int) -> list:
    if seeds is None:
        return [int(seed) + k for k in range(n)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise ValueError(f"got {n} images but {len(seeds)} seeds")
    return seeds


@torch.no_grad()
def encode_images(pipe, images, *, seed: int = 0, seeds=None) -> torch.Tensor:
    """VAE latents (sampled, times the scaling factor, as the official probe) of images
    (n, 3, H, W) in [-1, 1] -> (n, 4, H/8, W/8) (H/2 for the tiny stack). Image k's sample uses
    ``seeds[k]`` (default ``seed + k``)."""
    x = _check_images(images)
    device, dtype = _device_dtype(pipe)
    dist = pipe.vae.encode(x.to(device, pipe.vae.dtype)).latent_dist
    eps = _per_image_noise(dist.mean.shape[1:], _image_seeds(len(x), seeds, seed), VAE_OFFSET)
    z = dist.mean + dist.std * eps.to(device, dist.mean.dtype)
    return (z * pipe.vae.config.scaling_factor).to(dtype)


# ---------------------------------------------------------------------------------------------
# generation, with Wen et al.'s first-step statistic for free
# ---------------------------------------------------------------------------------------------
@contextmanager
def _first_call_outputs(unet):
    """Record the UNet's output on its first call (the first sampling step)."""
    store = {}

    def hook(_m, _inp, out):
        if "eps" not in store:
            store["eps"] = (out[0] if isinstance(out, tuple) else out.sample).detach().float()
    handle = unet.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@torch.no_grad()
def generate(pipe, prompts, seeds, *, steps: int = GENERATION_DEFAULTS["steps"],
             guidance: float = GENERATION_DEFAULTS["guidance"], batch_size: int = 4,
             progress: bool = True, image_size: int | None = None):
    """Generate one image per (prompt, seed) pair -> (images (n, 3, H, W) in [-1, 1],
    wen (n,) float64).

    ``prompts`` and ``seeds`` are lists of equal length (repeat a prompt to get several seeds).
    Each image starts from its own seeded noise, so a result does not depend on the batching.
    ``wen`` is Wen et al.'s detection statistic at the first sampling step,
    ||eps(x_T, prompt) - eps(x_T, "")||_2 per image, read from the two predictions that
    classifier-free guidance makes anyway: it costs no extra UNet pass (``guidance`` must be > 1).
    """
    from tqdm.auto import tqdm
    prompts = _check_prompts(prompts)
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per image")
    if not guidance > 1:
        raise ValueError(f"guidance must be > 1 (classifier-free guidance), got {guidance}")
    steps = check_positive_int(steps, "steps", minimum=2)
    batch_size = check_positive_int(batch_size, "batch_size")
    device, dtype = _device_dtype(pipe)
    size = image_size or pipe.unet.config.sample_size * pipe.vae_scale_factor
    lat = size // pipe.vae_scale_factor
    images, wen = [], []
    starts = range(0, len(prompts), batch_size)
    for i in tqdm(starts, desc="generate", disable=not progress, leave=False):
        ps, ss = prompts[i:i + batch_size], seeds[i:i + batch_size]
        noise = torch.stack([torch.randn(4, lat, lat, generator=torch.Generator().manual_seed(s))
                             for s in ss]).to(device, dtype)
        with _first_call_outputs(pipe.unet) as first:
            out = pipe(ps, num_inference_steps=steps, guidance_scale=float(guidance),
                       latents=noise, output_type="pt",       # the pipeline scales by init_noise_sigma
                       height=size, width=size)
        eps_u, eps_c = first["eps"].chunk(2)
        wen.append((eps_c - eps_u).flatten(1).norm(dim=1).double().cpu())
        images.append(out.images.float().cpu() * 2 - 1)
    return torch.cat(images).clamp(-1, 1), torch.cat(wen).numpy()


# ---------------------------------------------------------------------------------------------
# the paper's probe
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def probe_representations(pipe, images, *, layers=None, timestep: int = PROBE_TIMESTEP,
                          prompts=None, seed: int = 0, seeds=None, batch_size: int = 8) -> dict:
    """The official probe -> ``{layer: (n, C) max-pooled post-norm2 activations}``.

    VAE-encode ``images`` (n, 3, H, W) in [-1, 1], add noise at training ``timestep``, run one
    UNet pass with the empty prompt (or ``prompts``, for a with-prompt variant) and read the
    post-norm2 SiLU of each resnet in ``layers`` (default: every resnet of ``up_blocks.0``).
    Image k's VAE sample and probe noise come from ``seeds[k]`` (default ``seed + k``).
    """
    x = _check_images(images)
    img_seeds = _image_seeds(len(x), seeds, seed)
    layers = list(layers) if layers is not None else resnet_names(pipe.unet, PROBE_BLOCK)
    T = pipe.scheduler.config.num_train_timesteps
    if isinstance(timestep, bool) or not isinstance(timestep, int) or not 0 <= timestep < T:
        raise ValueError(f"timestep must be an integer in [0, {T - 1}], got {timestep!r}")
    prompts = [""] * len(x) if prompts is None else _check_prompts(prompts)
    if len(prompts) != len(x):
        raise ValueError(f"got {len(x)} images but {len(prompts)} prompts")
    device, dtype = _device_dtype(pipe)
    out = {k: [] for k in layers}
    for i in range(0, len(x), check_positive_int(batch_size, "batch_size")):
        sb = img_seeds[i:i + batch_size]
        z = encode_images(pipe, x[i:i + batch_size], seeds=sb)
        noise = _per_image_noise(z.shape[1:], sb, PROBE_OFFSET).to(device, dtype)
        t = torch.full((len(z),), timestep, dtype=torch.long, device=device)
        zt = pipe.scheduler.add_noise(z, noise, t)
        cond = encode_prompts(pipe, prompts[i:i + batch_size])
        with capture_post_norm2(pipe.unet, layers) as reps:
            pipe.unet(zt, t, encoder_hidden_states=cond)
        for k in layers:
            out[k].append(reps[k].float().amax(dim=(2, 3)).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# steering
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def reference_representations(pipe, images, prompts, *, layers=STEER_LAYERS,
                              timestep: int = PROBE_TIMESTEP, seed: int = 0, seeds=None,
                              batch_size: int = 8) -> dict:
    """Spatial-mean pooled outputs of the steering ``layers`` for reference images probed at
    ``timestep`` with their own prompts (as ``SD_steering.ipynb``) -> ``{layer: (n, C)}``.
    Image k's noise comes from ``seeds[k]`` (default ``seed + k``)."""
    x = _check_images(images)
    img_seeds = _image_seeds(len(x), seeds, seed)
    prompts = _check_prompts(prompts)
    if len(prompts) != len(x):
        raise ValueError(f"got {len(x)} images but {len(prompts)} prompts")
    device, dtype = _device_dtype(pipe)
    layers = list(layers)
    out = {k: [] for k in layers}
    for i in range(0, len(x), check_positive_int(batch_size, "batch_size")):
        sb = img_seeds[i:i + batch_size]
        z = encode_images(pipe, x[i:i + batch_size], seeds=sb)
        t = torch.full((len(z),), timestep, dtype=torch.long, device=device)
        zt = pipe.scheduler.add_noise(z, _per_image_noise(z.shape[1:], sb, REFERENCE_OFFSET).to(device, dtype), t)
        with capture(pipe.unet, layers) as reps:
            pipe.unet(zt, t, encoder_hidden_states=encode_prompts(pipe, prompts[i:i + batch_size]))
        for k in layers:
            out[k].append(reps[k].float().mean(dim=(2, 3)).cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def steering_directions(positive: dict, negative: dict) -> dict:
    """``{layer: mean(positive) - mean(negative)}`` from two :func:`reference_representations`."""
    if set(positive) != set(negative):
        raise ValueError(f"positive and negative name different layers: {sorted(positive)} vs {sorted(negative)}")
    return {k: mean_difference(positive[k], negative[k]) for k in positive}


def steering_window(steps: int = STEERING_SCHEDULE["steps"], last: int = STEERING_SCHEDULE["last"],
                    skip_final: int = STEERING_SCHEDULE["skip_final"]) -> tuple:
    """The step indices (0 = first, noisiest) where steering is on: the last ``last`` of
    ``steps`` steps except the final ``skip_final`` -> (first, stop) with first <= i < stop."""
    steps = check_positive_int(steps, "steps")
    if not 0 <= skip_final < last <= steps:
        raise ValueError(f"need 0 <= skip_final < last <= steps, got {skip_final}, {last}, {steps}")
    return steps - last, steps - skip_final


@torch.no_grad()
def generate_steered(pipe, prompts, seeds, directions: dict, alpha: float, *,
                     steps: int = STEERING_SCHEDULE["steps"], last: int = STEERING_SCHEDULE["last"],
                     skip_final: int = STEERING_SCHEDULE["skip_final"],
                     guidance: float = GENERATION_DEFAULTS["guidance"], batch_size: int = 4,
                     progress: bool = True) -> torch.Tensor:
    """:func:`generate` with ``alpha * direction`` added to each steered layer's output during the
    sampling steps of :func:`steering_window` (each UNet call is one step; guidance batches the
    two predictions into one call) -> images (n, 3, H, W) in [-1, 1]. ``alpha = 0`` is unsteered."""
    first, stop = steering_window(steps, last, skip_final)
    state = {"calls": 0}

    def pre(_m, _a):
        state["calls"] += 1
    handle = pipe.unet.register_forward_pre_hook(pre)
    active = lambda: first <= (state["calls"] - 1) % steps < stop          # noqa: E731
    try:
        with steer(pipe.unet, directions, float(alpha), active=active):
            images, _ = generate(pipe, prompts, seeds, steps=steps, guidance=guidance,
                                 batch_size=batch_size, progress=progress)
    finally:
        handle.remove()
    return images
