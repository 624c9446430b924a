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


def diffusion_loss(model, scheduler, x0, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The DDPM loss: mean over the batch of ||eps_theta(x_t, t) - eps||^2 / (C H W), with
    t uniform on {0, ..., T-1} and eps ~ N(0, I). ``x0``: (n, C, H, W) in [-1, 1]."""
    x0 = _check_images(x0)
    n = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = scheduler.add_noise(x0, eps, t)
    return torch.nn.functional.mse_loss(model(xt, t).sample, eps)


@torch.no_grad()
def sample(model, scheduler, n: int, *, steps: int = 50, seed: int = 0, batch_size: int = 256,
           shape=None) -> torch.Tensor:
    """Generate ``n`` images with deterministic DDIM (eta = 0) in ``steps`` steps.

    The initial noise comes from a generator seeded with ``seed``, so the same (model, n, seed)
    gives the same images. Returns (n, C, H, W) float32 in [-1, 1].
    """
    n = check_positive_int(n, "n")
    steps = check_positive_int(steps, "steps", minimum=2)
    batch_size = check_positive_int(batch_size, "batch_size")
    cfg = model.config
    shape = tuple(shape) if shape is not None else (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn((n, *shape), generator=gen)
    scheduler.set_timesteps(steps)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        for t in scheduler.timesteps:
            eps = model(xb, t).sample
            xb = scheduler.step(eps, t, xb, eta=0.0).prev_sample
        out.append(xb)
    model.train(was_training)
    return torch.cat(out).clamp(-1, 1)


def pool(features: torch.Tensor, how: str = "max") -> torch.Tensor:
    """Pool a feature map (n, C, h, w) over space to (n, C): ``"max"`` or ``"mean"``."""
    f = as_float_tensor(features, "features", ndim=4)
    if how == "max":
        return f.amax(dim=(2, 3))
    if how == "mean":
        return f.mean(dim=(2, 3))
    raise ValueError(f"unknown pooling {how!r}; choose 'max' or 'mean'")


@torch.no_grad()
def probe(model, scheduler, images, names, *, timestep: int = 10, seed: int = 0) -> dict:
    """The representation probe: add noise at training ``timestep`` to ``images`` (n, C, H, W),
    run one UNet pass, and return ``{name: feature map (n, C', h, w)}`` of the named modules.

    The same noise (seeded with ``seed``) is used for every call with the same arguments.
    """
    from .representations import capture
    x0 = _check_images(images, "images")
    T = scheduler.config.num_train_timesteps
    if isinstance(timestep, bool) or not isinstance(timestep, int) or not 0 <= timestep < T:
        raise ValueError(f"timestep must be an integer in [0, {T - 1}], got {timestep!r}")
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.full((x0.shape[0],), timestep, dtype=torch.long)
    xt = scheduler.add_noise(x0, eps, t)
    was_training = model.training
    model.eval()
    with capture(model, names) as reps:
        model(xt, t)
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
