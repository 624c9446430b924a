"""A small diffusers ``UNet2DModel`` diffusion model for CPU: construction, noise schedule, loss,
DDIM sampler, checkpoints with checksums, and the representation probe.

The model is the same class family the Stable Diffusion chapter uses (diffusers UNets), so module
names such as ``mid_block`` and ``up_blocks.0.resnets.1`` and the hooks of
:func:`utils.representations.capture` carry over.

Conventions (as in Stable Diffusion): a discrete DDPM forward process with T = 1000 training
timesteps, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, and a network that predicts eps
(epsilon-prediction). Images are (n, C, H, W) float32 in [-1, 1].

    model = build_unet(CONFIGS["digits-memorized"]["model"])
    sched = make_scheduler()
    loss = diffusion_loss(model, sched, x0, generator=g)           # one training loss
    x = sample(model, sched, 64, steps=50, seed=0)                 # DDIM, deterministic
    reps = probe(model, sched, x, ["mid_block"], timestep=10)      # {name: (n, C, h, w)}
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .checks import as_float_tensor, check_positive_int

#: Training timesteps of the discrete forward process (as in Stable Diffusion).
NUM_TRAIN_TIMESTEPS = 1000
#: Noise schedule (diffusers name). The cosine schedule suits small images: with SD's
#: "scaled_linear" betas a 16 x 16 image is still recognisable at the last timestep.
BETA_SCHEDULE = "squaredcos_cap_v2"

#: Architecture of the book's small U-Net: 16 x 16 -> 8 x 8 -> 4 x 4, no attention, one resnet per
#: down block (two per up block), about 0.6 M parameters (2.5 MB in float32).
SMALL_UNET = dict(
    sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
    block_out_channels=(16, 32, 64), norm_num_groups=8, add_attention=False,
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
)

#: Training configurations of ``python -m utils.train_unet --config NAME``.
CONFIGS = {
    # a handful of digits: the network has capacity to spare and learns to reproduce them
    "digits-memorized": dict(dataset="digits", n=16, size=16, data_seed=0, steps=3000,
                             batch_size=16, lr=2e-3, warmup=100, seed=0, model=SMALL_UNET),
    # every digit (1,797 images), same network and recipe; it never copies, so half the steps
    "digits-generalized": dict(dataset="digits", n=None, size=16, data_seed=0, steps=1500,
                               batch_size=16, lr=2e-3, warmup=100, seed=0, model=SMALL_UNET),
    # caption-conditional (chapter 9): every digit with the caption "digit k", plus 10 planted
    # digits, each repeated 100 times with a caption of its own; 10% of captions are dropped to
    # the empty caption (label 20) so that classifier-free guidance works
    "digits-planted": dict(dataset="digits", n=None, size=16, data_seed=0, steps=6000,
                           batch_size=16, lr=2e-3, warmup=100, seed=0,
                           planted=dict(n_planted=10, copies=100, seed=0), cond_drop=0.1,
                           model=dict(SMALL_UNET, num_class_embeds=21)),
    # chapter 9's statistics: more prompts of both kinds. Every digit once with one of 40 ordinary
    # captions ("digit k, style j", j = 0..3: each class split into four, 43 to 46 images per
    # caption), plus 32 planted digits, each repeated 80 times with a caption of its own;
    # 10% empty captions (label 72) for classifier-free guidance
    "digits-planted-many": dict(dataset="digits", n=None, size=16, data_seed=0, steps=10000,
                                batch_size=16, lr=2e-3, warmup=100, seed=0,
                                planted=dict(n_planted=32, copies=80, seed=0, captions_per_class=4),
                                cond_drop=0.1, model=dict(SMALL_UNET, num_class_embeds=73)),
    # chapter 8, issue 11: the generalizing recipe trained until its held-out loss stops improving;
    # 297 of the 1,797 digits are held out, the loss on them is measured every 300 steps, and
    # training stops after 4 evaluations without improvement (at most 6000 steps)
    "digits-generalized-long": dict(dataset="digits", n=None, size=16, data_seed=0, steps=6000,
                                    batch_size=16, lr=2e-3, warmup=100, seed=0, holdout=297,
                                    eval_every=300, patience=4, model=SMALL_UNET),
    # chapter 8, Kadkhodaie et al.'s test: pairs of networks trained on disjoint image sets (the
    # `part` of a shuffled dataset) from different initial weights (seed 1 and 2).
    # Two memorizing networks on disjoint sets of 16 digits (32 digits drawn with data_seed 1) ...
    "digits-mem-pair-a": dict(dataset="digits", n=32, size=16, data_seed=1, steps=1500,
                              batch_size=16, lr=2e-3, warmup=100, seed=1,
                              part=dict(parts=2, index=0, seed=0), model=SMALL_UNET),
    "digits-mem-pair-b": dict(dataset="digits", n=32, size=16, data_seed=1, steps=1500,
                              batch_size=16, lr=2e-3, warmup=100, seed=2,
                              part=dict(parts=2, index=1, seed=0), model=SMALL_UNET),
    # ... and two on disjoint halves of all 1,797 digits (898 and 899)
    "digits-half-a": dict(dataset="digits", n=None, size=16, data_seed=0, steps=2000,
                          batch_size=16, lr=2e-3, warmup=100, seed=1,
                          part=dict(parts=2, index=0, seed=0), model=SMALL_UNET),
    "digits-half-b": dict(dataset="digits", n=None, size=16, data_seed=0, steps=2000,
                          batch_size=16, lr=2e-3, warmup=100, seed=2,
                          part=dict(parts=2, index=1, seed=0), model=SMALL_UNET),
}


def get_config(name: str) -> dict:
    """A copy of ``CONFIGS[name]``; an unknown name raises ``ValueError`` listing the valid ones."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; valid configs: {', '.join(CONFIGS)}")
    return json.loads(json.dumps(CONFIGS[name]))


def build_unet(model_config: dict | None = None):
    """A diffusers ``UNet2DModel`` from ``model_config`` (keyword arguments; default
    :data:`SMALL_UNET`). Lists are accepted for the tuple-valued entries (JSON round trips)."""
    from diffusers import UNet2DModel
    cfg = dict(SMALL_UNET if model_config is None else model_config)
    if not isinstance(cfg, dict):
        raise TypeError(f"model_config must be a dict, got {type(model_config).__name__}")
    for k in ("block_out_channels", "down_block_types", "up_block_types"):
        if k in cfg:
            cfg[k] = tuple(cfg[k])
    try:
        return UNet2DModel(**cfg)
    except TypeError as exc:
        raise ValueError(f"invalid model_config for UNet2DModel: {exc}") from exc


def make_scheduler(kind: str = "ddim"):
    """The noise schedule as a diffusers scheduler: ``"ddim"`` (``DDIMScheduler``, sampling and
    ``add_noise``) or ``"ddpm"`` (``DDPMScheduler``); T = 1000, cosine betas, eps-prediction."""
    from diffusers import DDIMScheduler, DDPMScheduler
    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}
    if kind not in classes:
        raise ValueError(f"unknown scheduler kind {kind!r}; choose 'ddim' or 'ddpm'")
    extra = dict(set_alpha_to_one=True) if kind == "ddim" else {}
    return classes[kind](num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=BETA_SCHEDULE,
                         prediction_type="epsilon", clip_sample=True, **extra)


def noise_std(scheduler, timestep) -> float | torch.Tensor:
    """sqrt(1 - abar_t) / sqrt(abar_t): the VE noise level sigma that timestep t corresponds to
    (x_t / sqrt(abar_t) = x_0 + sigma eps)."""
    ab = scheduler.alphas_cumprod[torch.as_tensor(timestep, dtype=torch.long)]
    s = ((1 - ab) / ab).sqrt()
    return float(s) if s.ndim == 0 else s


def _check_images(x, name="x0") -> torch.Tensor:
    t = as_float_tensor(x, name, ndim=4).float()
    return t


def num_labels(model) -> int:
    """Number of caption labels of a conditional model (``num_class_embeds``), 0 if unconditional."""
    return int(getattr(model.config, "num_class_embeds", None) or 0)


def check_labels(model, labels, n: int, name: str = "class_labels") -> torch.Tensor | None:
    """Validate caption labels for ``n`` images: None for an unconditional model, otherwise an int
    or an (n,) integer tensor with values in [0, num_labels). Returns an (n,) int64 tensor or None."""
    k = num_labels(model)
    if k == 0:
        if labels is not None:
            raise ValueError(f"{name} given, but the model is unconditional (no num_class_embeds)")
        return None
    if labels is None:
        raise ValueError(f"the model is conditional on {k} labels: give {name}")
    if isinstance(labels, bool):
        raise TypeError(f"{name} must be an int or an integer tensor, got a bool")
    lab = torch.as_tensor(labels)
    if lab.is_floating_point() or lab.is_complex():
        raise TypeError(f"{name} must be integers, got dtype {lab.dtype}")
    lab = lab.long()
    if lab.ndim == 0:
        lab = lab.expand(n)
    if lab.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(lab.shape)}")
    if n and (int(lab.min()) < 0 or int(lab.max()) >= k):
        raise ValueError(f"{name} must lie in [0, {k - 1}], got values in [{int(lab.min())}, {int(lab.max())}]")
    return lab.clone()


def initial_noise(model, n: int, *, seed: int = 0, shape=None) -> torch.Tensor:
    """The starting noise x_T (n, C, H, W) that :func:`sample` uses for ``seed``."""
    cfg = model.config
    shape = tuple(shape) if shape is not None else (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn((check_positive_int(n, "n"), *shape), generator=gen)


def diffusion_loss(model, scheduler, x0, *, generator: torch.Generator | None = None,
                   class_labels=None) -> torch.Tensor:
    """The DDPM loss: mean over the batch of ||eps_theta(x_t, t[, c]) - eps||^2 / (C H W), with
    t uniform on {0, ..., T-1} and eps ~ N(0, I). ``x0``: (n, C, H, W) in [-1, 1];
    ``class_labels``: (n,) caption labels, required by (and only by) a conditional model."""
    x0 = _check_images(x0)
    n = x0.shape[0]
    lab = check_labels(model, class_labels, n)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = scheduler.add_noise(x0, eps, t)
    return torch.nn.functional.mse_loss(model(xt, t, class_labels=lab).sample, eps)


def guided_eps(model, x, t, labels, *, guidance: float = 1.0, null_label: int | None = None):
    """The noise prediction used for sampling: eps(x, t) for an unconditional model (labels None),
    eps(x, t, c) at guidance 1, and classifier-free guidance
    eps(x, t, null) + guidance * (eps(x, t, c) - eps(x, t, null)) otherwise (one batched pass)."""
    if labels is None:
        return model(x, t).sample
    if guidance == 1.0:
        return model(x, t, class_labels=labels).sample
    null = torch.full_like(labels, int(null_label))
    both = model(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample
    cond, uncond = both.chunk(2)
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample(model, scheduler, n: int, *, steps: int = 50, seed: int = 0, batch_size: int = 256,
           shape=None, class_labels=None, guidance: float = 1.0, null_label: int | None = None,
           return_x0: bool = False):
    """Generate ``n`` images with deterministic DDIM (eta = 0) in ``steps`` steps.

    The initial noise is :func:`initial_noise` (model, n, seed), so the same (model, n, seed)
    gives the same images. A conditional model needs ``class_labels`` (an int or (n,) labels);
    ``guidance`` != 1 applies classifier-free guidance with the empty caption ``null_label``.
    Returns (n, C, H, W) float32 in [-1, 1]; with ``return_x0`` also the clean-image estimate of
    every step, (steps, n, C, H, W) (the sampling trajectory as the model sees it).
    """
    n = check_positive_int(n, "n")
    steps = check_positive_int(steps, "steps", minimum=2)
    batch_size = check_positive_int(batch_size, "batch_size")
    labels = check_labels(model, class_labels, n)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not guidance >= 0:
        raise ValueError(f"guidance must be a number >= 0, got {guidance!r}")
    if labels is not None and guidance != 1.0:
        check_labels(model, null_label, 1, "null_label")
    x = initial_noise(model, n, seed=seed, shape=shape)
    scheduler.set_timesteps(steps)
    was_training = model.training
    model.eval()
    out, x0s = [], []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        lb = None if labels is None else labels[start:start + batch_size]
        traj = []
        for t in scheduler.timesteps:
            eps = guided_eps(model, xb, t, lb, guidance=float(guidance), null_label=null_label)
            step = scheduler.step(eps, t, xb, eta=0.0)
            xb = step.prev_sample
            if return_x0:
                traj.append(step.pred_original_sample)
        out.append(xb)
        if return_x0:
            x0s.append(torch.stack(traj))
    model.train(was_training)
    images = torch.cat(out).clamp(-1, 1)
    return (images, torch.cat(x0s, dim=1)) if return_x0 else images


def pool(features: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Pool a feature map (n, C, h, w) over space to (n, C): ``"max"`` or ``"mean"``."""
    f = as_float_tensor(features, "features", ndim=4)
    if how == "max":
        return f.amax(dim=(2, 3))
    if how == "mean":
        return f.mean(dim=(2, 3))
    raise ValueError(f"unknown pooling {how!r}; choose 'max' or 'mean'")


@torch.no_grad()
def probe(model, scheduler, images, names, *, timestep: int = 10, seed: int = 0,
          class_labels=None, site: str = "output") -> dict:
    """The representation probe: add noise at training ``timestep`` to ``images`` (n, C, H, W),
    run one UNet pass, and return ``{name: feature map (n, C', h, w)}`` of the named modules.

    ``site``: ``"output"`` reads each named module's output; ``"post_norm2"`` reads, for named
    resnets (``"up_blocks.0.resnets.0"``), the SiLU after ``norm2`` that the official code hooks
    (see :func:`utils.representations.capture_post_norm2`).
    The same noise (seeded with ``seed``) is used for every call with the same arguments. A
    conditional model needs ``class_labels`` (the detector of chapter 9 passes the empty caption).
    """
    from .representations import capture, capture_post_norm2
    sites = {"output": capture, "post_norm2": capture_post_norm2}
    if site not in sites:
        raise ValueError(f"unknown probe site {site!r}; choose one of {sorted(sites)}")
    x0 = _check_images(images, "images")
    labels = check_labels(model, class_labels, x0.shape[0])
    T = scheduler.config.num_train_timesteps
    if isinstance(timestep, bool) or not isinstance(timestep, int) or not 0 <= timestep < T:
        raise ValueError(f"timestep must be an integer in [0, {T - 1}], got {timestep!r}")
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.full((x0.shape[0],), timestep, dtype=torch.long)
    xt = scheduler.add_noise(x0, eps, t)
    was_training = model.training
    model.eval()
    with sites[site](model, names) as reps:
        model(xt, t, class_labels=labels)
    model.train(was_training)
    return dict(reps)


# ------------------------------------------------------------------------------------------
# checkpoints: safetensors weights + a JSON sidecar recording sha256, config and provenance
# ------------------------------------------------------------------------------------------
def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(path) -> Path:
    """``model.safetensors`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def save_checkpoint(model, path, metadata: dict) -> dict:
    """Write the model's weights to ``path`` (.safetensors) and a JSON sidecar beside it with
    ``metadata`` plus ``sha256``, ``file`` and ``model_config``. Returns the sidecar dict."""
    from safetensors.torch import save_file
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    meta = dict(metadata)
    meta.update(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size)
    sidecar_path(path).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def read_sidecar(path) -> dict:
    """The JSON sidecar of checkpoint ``path``; a missing one raises ``FileNotFoundError``."""
    side = sidecar_path(path)
    if not side.exists():
        raise FileNotFoundError(f"no sidecar {side.name} beside {Path(path).name}")
    return json.loads(side.read_text())


def verify_checkpoint(path) -> dict:
    """Check the file's SHA-256 against its sidecar; returns the sidecar, raises ``ValueError``
    on a mismatch (a corrupted or replaced file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path.name} not found")
    meta = read_sidecar(path)
    digest = sha256_file(path)
    if digest != meta.get("sha256"):
        raise ValueError(f"checkpoint {path.name}: sha256 {digest[:12]}... does not match the "
                         f"sidecar's {str(meta.get('sha256'))[:12]}...; re-create it with the "
                         f"command in the sidecar")
    return meta


def load_checkpoint(path):
    """Verify (:func:`verify_checkpoint`) and load a checkpoint with safetensors.
    Returns ``(model in eval mode, sidecar dict)``."""
    from safetensors.torch import load_file
    meta = verify_checkpoint(path)
    model = build_unet(meta["config"]["model"])
    model.load_state_dict(load_file(str(path)))
    return model.eval(), meta
